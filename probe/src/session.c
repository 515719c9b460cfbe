#include "session.h"

#include "compress.h"
#include "sha256.h"
#include "version.h"

#include <string.h>
#include <sys/resource.h>

void haul_send_hello(haul_out *out)
{
    static const char ver[] = HAUL_PROBE_VERSION, arch[] = HAUL_ARCH;
    size_t body = 8 + 2 + 2 + strlen(ver) + 2 + strlen(arch) + 4;
    uint8_t *p = haul_out_frame(out, HAUL_MSG_HELLO, body, body);
    uint32_t features = 0;
    if (strcmp(haul_sha256_impl_name(), "portable") != 0)
        features |= 1;
    if (haul_compress_available())
        features |= 2;
    p = haul_put_bytes(p, HAUL_HELLO_MAGIC, 8);
    p = haul_put_u16(p, HAUL_PROTOCOL_VERSION);
    p = haul_put_bytes16(p, ver, strlen(ver));
    p = haul_put_bytes16(p, arch, strlen(arch));
    haul_put_u32(p, features);
    haul_out_commit(out, body);
}

void haul_send_warn(haul_out *out, const char *path, size_t plen, int err, const char *msg)
{
    size_t mlen = strlen(msg);
    if (plen > HAUL_MAX_PATH)
        plen = HAUL_MAX_PATH;
    if (mlen > HAUL_WARN_MAX_MESSAGE)
        mlen = HAUL_WARN_MAX_MESSAGE;
    size_t body = 2 + plen + 4 + 2 + mlen;
    uint8_t *p = haul_out_frame(out, HAUL_MSG_WARN, body, body);
    p = haul_put_bytes16(p, path, plen);
    p = haul_put_u32(p, (uint32_t)err);
    haul_put_bytes16(p, msg, mlen);
    haul_out_commit(out, body);
}

void haul_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4200) {
        rl.rlim_cur = rl.rlim_max < 4200 ? rl.rlim_max : 4200;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}
