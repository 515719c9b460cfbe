/** Haul's version, as `haul --version`, the bus's `status` and the console report it. */
export const HAUL_VERSION = '0.1.0';
