import { NativeDecodeOptions } from './native';
import * as v from './validate';

/** PIL's decompression-bomb limit (2 × `Image.MAX_IMAGE_PIXELS`), the default `maxPixels`. */
export const DEFAULT_MAX_PIXELS = 178956970;

/** The decoder options every entry point passes to the native side, with their defaults (defined here only). */
export function decodeOptions(o: { maxPixels?: number; fastDecodeMinSide?: number; strict?: boolean }, fastDecodeDefault = 0): NativeDecodeOptions {
  return {
    maxPixels: o.maxPixels === undefined ? DEFAULT_MAX_PIXELS : v.positiveInt('maxPixels', o.maxPixels),
    fastDecodeMinSide: o.fastDecodeMinSide === undefined ? fastDecodeDefault : v.nonNegativeInt('fastDecodeMinSide', o.fastDecodeMinSide),
    strict: o.strict === undefined ? false : v.bool('strict', o.strict),
  };
}
