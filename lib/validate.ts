import { InvalidOptionError } from './errors';

/** Describes a received value for error messages: `-1`, `"abc"`, `an object`, `undefined`. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'function') return 'a function';
  return `${typeof value === 'object' ? 'an object' : typeof value}`;
}

export function invalid(option: string, expected: string, value: unknown): InvalidOptionError {
  return new InvalidOptionError(option, `Expected ${expected} for ${option} but received ${describe(value)}`);
}

export function positiveInt(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw invalid(option, 'positive integer', value);
  return value;
}

export function nonNegativeInt(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw invalid(option, 'non-negative integer', value);
  return value;
}

export function numberInRange(option: string, value: unknown, min: number, max: number, inclusiveMax = true): number {
  const ok = typeof value === 'number' && Number.isFinite(value) && value >= min && (inclusiveMax ? value <= max : value < max);
  if (!ok) throw invalid(option, `number in [${min}, ${max}${inclusiveMax ? ']' : ')'}`, value);
  return value as number;
}

export function positiveNumber(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw invalid(option, 'positive number', value);
  return value;
}

export function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
    throw invalid(option, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  return value as T;
}

export function nonEmptyString(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(option, 'non-empty string', value);
  return value;
}

export function bool(option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalid(option, 'boolean', value);
  return value;
}

export function plainObject(option: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(option, 'an options object', value);
  return value as Record<string, unknown>;
}

/** Rejects keys that are not part of an options interface (catches typos such as `numclasses`). */
export function knownKeys(option: string, value: Record<string, unknown>, keys: readonly string[]): void {
  for (const k of Object.keys(value)) {
    if (!keys.includes(k))
      throw new InvalidOptionError(`${option}.${k}`, `Unknown option ${option}.${k}; expected one of ${keys.join(', ')}`);
  }
}

/** By tag, not instanceof: a Float32Array from another realm (a vm context, jest's sandbox) is one too. */
function isFloat32Array(x: unknown): x is Float32Array {
  return Object.prototype.toString.call(x) === '[object Float32Array]';
}

/** Validates a tensor shape and that `data` holds exactly its product. */
export function tensorInput(data: unknown, shape: unknown, rank?: number): { data: Float32Array; shape: number[] } {
  if (!isFloat32Array(data)) throw invalid('input', 'Float32Array', data);
  if (!Array.isArray(shape) || shape.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 1))
    throw invalid('shape', 'array of positive integers', shape);
  if (rank !== undefined && shape.length !== rank) throw invalid('shape', `${rank} dimensions`, shape);
  const n = shape.reduce((a: number, b: number) => a * b, 1);
  if (n !== data.length)
    throw new InvalidOptionError('input', `Expected ${n} values for shape [${shape.join(', ')}] but received ${data.length}`);
  return { data, shape: shape as number[] };
}
