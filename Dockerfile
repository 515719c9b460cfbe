# Haul's daemon, web console and CLI in one image (the same build serves `haul daemon` and
# `haul web`; compose runs them as separate containers, so the web one holds no repository key).
# Node 24 is a supported LTS line; the native addons (argon2, zstd-napi) build here.
FROM node:24-bookworm AS build
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends build-essential python3 musl-tools libzstd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/haul
COPY package.json package-lock.json ./
COPY scripts ./scripts
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && bash probe/build.sh && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/haul --create-home haul
WORKDIR /opt/haul
COPY --from=build /opt/haul /opt/haul
ENV HAUL_HOME=/var/lib/haul NODE_ENV=production
USER haul
VOLUME ["/var/lib/haul"]
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/haul/bin/haul"]
CMD ["--help"]
