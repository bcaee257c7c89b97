export { Model, ResNet, ARCHS } from './model';
export type { Arch, ResNetArch, ModelOptions, ResNetOptions, LoadReport, ForwardOptions, Precision } from './model';
export { devices, cuda, setNumThreads, getNumThreads, version } from './device';
export { fetchWeights, downloadWeightsFile, hubCacheDir, weightsFileName, KNOWN_WEIGHTS, DEFAULT_HUB_BASE_URL } from './weights';
export type { WeightsName, HubOptions, DownloadProgress } from './weights';
export { readStateDict } from './state-dict';
export type { TensorData } from './native';
export {
  TorchResNetError,
  InvalidOptionError,
  CheckpointError,
  DeviceError,
  NativeLoadError,
  WeightsError,
  DisposedError,
  NativeError,
} from './errors';
