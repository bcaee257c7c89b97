// Unit tests run without the native addon: a suite that loaded it fails (move such a test to test/native).
import { loadedBinary } from '../../lib/native';

export function noAddon(): void {
  afterAll(() => expect({ addonLoaded: loadedBinary() !== undefined }).toEqual({ addonLoaded: false }));
}
