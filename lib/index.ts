export { Model, ResNet, ARCHS, HEAD_KINDS } from './model';
export type { Arch, ResNetArch, ModelOptions, ResNetOptions, LoadReport, ForwardOptions, Precision, Prediction, PredictOptions, HeadKind, Explanation, ExplainOptions } from './model';
export { assess, recommend, ASSESS_DEFAULTS, COLLAPSE_DEFAULTS } from './transfer';
export { ONNX_DEFAULTS } from './onnx';
export { PROTOTYPE_DEFAULTS } from './prototypes';
export { chooseModel, RANKING_ORDER } from './candidates';
export { tune, tuneSpace, TUNE_DEFAULTS } from './tune';
export type { TuneOptions, TuneResult, TuneSpace, TuneConfig, TuneDimension, TuneTrialResult } from './tune';
export type { Candidate, RankedCandidate, CandidateRanking } from './candidates';
export type { PrototypeOptions, PrototypeInfo } from './prototypes';
export type { OnnxExportOptions } from './onnx';
export type { Assessment, AssessOptions, ProbeOptions, Recommendation, Collapse } from './transfer';
export { Transform, IMAGENET_MEAN, IMAGENET_STD } from './transform';
export type { TransformOp, Interpolation } from './transform';
export { ImageDataset, ImageFolder, ImageList, DataLoader, Batch } from './data';
export type { DatasetOptions, DataLoaderOptions, SkippedSample } from './data';
export { devices, cuda, setNumThreads, getNumThreads, setComputePriority, getComputePriority, version, manualSeed, cpuCache } from './device';
export { COMPUTE_NICE_DEFAULT, loadedBinary } from './native';
export type { LoadedBinary } from './native';
export type { LibtorchInfo } from './binary';
export type { CpuCacheStats, CudaDeviceInfo } from './native';
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
  DatasetError,
  DisposedError,
  BusyError,
  TimeoutError,
  NativeError,
  OutOfMemoryError,
  DistributedError,
} from './errors';
export { DISTRIBUTED_DEFAULTS, rankDevice } from './distributed';
export type { DistributedOptions } from './distributed';
export { Trainer, TRAINER_DEFAULTS, DOMAIN_ADAPTATION_DEFAULTS, resolveTrainerOptions, STRATEGIES, OPTIMIZERS, MONITORS, DOMAIN_ADAPTATION_METHODS } from './trainer';
export { LOADER_DEFAULTS } from './data';
export { PREDICT_DEFAULTS } from './model';
export { IMAGENET_CLASSES } from './imagenet-classes';
export type { TrainerOptions, ResolvedTrainerOptions, Strategy, Optimizer, Monitor, EpochRecord, AllReduceStats, BatchEndEvent, FitResult, DomainAdaptationOptions, DomainAdaptationMethod } from './trainer';
export { Scheduler, SCHEDULE_DEFAULTS } from './schedule';
export { launch, LAUNCH_DEFAULTS } from './launch';
export type { LaunchOptions, LaunchResult, RankExit } from './launch';
export type { Schedule } from './schedule';
export type { EvalReport, ClassMetrics } from './metrics';
export { encodeJpeg, thumbnailJpeg } from './image';
export type { RgbImage } from './image';
export { makeSyntheticDataset, drawSynthetic, SYNTHETIC_CLASSES } from './synthetic';
export type { SyntheticOptions } from './synthetic';
export { writeRunReport, renderRunReport, renderExperimentReport } from './report';
export type { RunSummary, ExperimentRow } from './report';
export { BatchPredictor, BATCH_PREDICTOR_DEFAULTS } from './serve/predictor';
export type { BatchPredictorOptions, BatchPredictOptions, BatchEvent, BatchInput } from './serve/predictor';
export { PredictionServer, SERVER_DEFAULTS, errorResponse, isLoopback } from './serve/http';
export type { PredictionServerOptions } from './serve/http';
