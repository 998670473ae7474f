/**
 * Errors (api.md §12): `RTMBaseError` (what every failing call rejects with and every
 * synchronous failure throws, R170), the `ErrorInfo` shapes, and code lookup from the
 * generated error table of the protocol crate.
 */
import { ERROR_TABLE, type ErrorName } from "./gen/codes";

/** What every rejected promise carries (§12.1). */
export interface ErrorInfo {
  error: boolean;
  reason: string;
  operation: string;
  errorCode: number;
}

/** Extra error details (§12.1). */
export interface IErrorInfo {
  code?: number;
  serverCode?: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  originalError?: any;
}

const NAME_BY_CODE = new Map<number, string>();
for (const [name, row] of Object.entries(ERROR_TABLE)) NAME_BY_CODE.set(row.code, name);

/** The numeric code of an error name. */
export function code(name: ErrorName): number {
  return ERROR_TABLE[name].code;
}

/** The name of a numeric code (`RTM_ERROR_…`, `SB_ERROR_…`), or `undefined`. */
export function errorName(errorCode: number): string | undefined {
  return errorCode === 0 ? "RTM_ERROR_OK" : NAME_BY_CODE.get(errorCode);
}

/** The error class of the SDK (§12.1): `{error: true, errorCode, reason, operation}`. */
export class RTMBaseError extends Error implements ErrorInfo {
  /** Underlying error, if any. */
  originalError?: Error;
  /** Same as `errorCode`. */
  code?: number;
  /** Raw code from the server, when the failure came from it. */
  serverCode?: number;
  /** Always true. */
  error: boolean;
  /** Human-readable reason. */
  reason: string;
  /** The API that failed. */
  operation: string;
  /** Error code (§12.2). */
  errorCode: number;

  /**
   * `args` is the reason (or `[reason, ...details]`); `errorInfo` the code (a number),
   * a reason string, or `{code, serverCode, originalError}`.
   */
  constructor(
    operation: string,
    args?: string | readonly [string, ...unknown[]],
    errorInfo?: IErrorInfo | string | number,
  ) {
    const reason = typeof args === "string" ? args : Array.isArray(args) ? args.map(String).join(" ") : "";
    let errorCode = -1;
    let serverCode: number | undefined;
    let originalError: Error | undefined;
    if (typeof errorInfo === "number") errorCode = errorInfo;
    else if (typeof errorInfo === "object" && errorInfo !== null) {
      if (typeof errorInfo.code === "number") errorCode = errorInfo.code;
      serverCode = errorInfo.serverCode;
      originalError = errorInfo.originalError as Error | undefined;
    }
    const name = errorName(errorCode);
    super(`${operation} failed: ${name ?? errorCode}${reason ? `: ${reason}` : ""}`);
    this.name = "RTMBaseError";
    this.error = true;
    this.reason = typeof errorInfo === "string" ? errorInfo : reason;
    this.operation = operation;
    this.errorCode = errorCode;
    this.code = errorCode;
    if (serverCode !== undefined) this.serverCode = serverCode;
    if (originalError !== undefined) this.originalError = originalError;
  }
}

/** An `RTMBaseError` for `operation` with the code named `name`. */
export function rtmError(operation: string, name: ErrorName, reason: string, serverCode?: number): RTMBaseError {
  const info: IErrorInfo = { code: ERROR_TABLE[name].code };
  if (serverCode !== undefined) info.serverCode = serverCode;
  return new RTMBaseError(operation, reason, info);
}

/** An `RTMBaseError` from a server `Error` reply (codes and reasons unchanged, §12.1). */
export function serverError(operation: string, errCode: number, reason: string, serverOp: string): RTMBaseError {
  return new RTMBaseError(serverOp || operation, reason, { code: errCode, serverCode: errCode });
}
