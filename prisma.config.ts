// Used only by `prisma generate` (and validate/format): Haul applies its own SQL migrations
// (prisma/migrations/<provider>/) and opens the database through a driver adapter at run time.
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
});
