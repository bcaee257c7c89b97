import { InvalidOptionError } from './errors';
import { getNative } from './native';
import { Transform } from './transform';
import * as v from './validate';

/** An 8-bit image, planar: `shape` is `[channels (3 or 1), height, width]`. */
export interface RgbImage {
  data: Uint8Array;
  shape: [number, number, number];
}

/**
 * Encodes an 8-bit planar image as a baseline JPEG (libjpeg-turbo, off the JS thread).
 * `quality` 1–100, default 90.
 */
export async function encodeJpeg(image: RgbImage, quality = 90): Promise<Buffer> {
  v.positiveInt('quality', quality);
  if (quality > 100) throw v.invalid('quality', 'integer in 1..100', quality);
  const [c, h, w] = image.shape;
  if (!(c === 1 || c === 3) || !(h > 0) || !(w > 0) || image.data.length !== c * h * w)
    throw new InvalidOptionError('image', `Expected image.shape [3|1, H, W] matching data length ${image.data.length} but received ${JSON.stringify(image.shape)}`);
  return getNative().encodeJpeg(image.data, image.shape, quality);
}

/**
 * A square JPEG thumbnail of `size` pixels, for reports: the shorter side resized to `resize` (default `size`), then
 * centre-cropped (resize 128 → crop 112 frames the image as the eval transform's 256 → 224 does).
 */
export async function thumbnailJpeg(source: string | Buffer, size = 96, quality = 80, resize = size): Promise<Buffer> {
  const t = Transform.compose(Transform.resize(resize), Transform.centerCrop(size));
  const img = await t.apply(source);
  return encodeJpeg({ data: img.data as unknown as Uint8Array, shape: img.shape as [number, number, number] }, quality);
}
