import { resolve } from 'node:path';
import { getNative, TensorData } from './native';
import { nonEmptyString } from './validate';

/**
 * Reads a `.pth` (PyTorch zip format, safe: data only) or `.safetensors` file into plain tensors, in file order,
 * with the string metadata it carries.
 */
export async function readStateDict(
  path: string,
): Promise<{ keys: string[]; tensors: Record<string, TensorData>; metadata: Record<string, string> }> {
  const abs = resolve(nonEmptyString('path', path));
  return getNative().readCheckpoint(abs);
}
