// What the bus needs of a logger: pino's calling convention (details object, then the message),
// so the daemon passes its pino logger as it is.
export interface BusLogger {
  debug(details: object, message: string): void;
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}
