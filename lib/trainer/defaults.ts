// The Trainer's choice lists and defaults, each defined here only: the options' validation, the native config, the
// CLI's choices and help, and the 'auto' recommendations (transfer.ts) import them.

export const STRATEGIES = ['feature-extract', 'partial', 'full', 'linear-probe', 'lp-ft', 'auto'] as const;
export type Strategy = (typeof STRATEGIES)[number];
export const OPTIMIZERS = ['sgd', 'adam', 'adamw', 'rmsprop'] as const;
export type Optimizer = (typeof OPTIMIZERS)[number];
export const MONITORS = ['valAccuracy', 'valLoss', 'accuracy', 'loss'] as const;
export type Monitor = (typeof MONITORS)[number];
export const DOMAIN_ADAPTATION_METHODS = ['dann', 'mmd'] as const;
export type DomainAdaptationMethod = (typeof DOMAIN_ADAPTATION_METHODS)[number];
export const DOMAIN_ADAPTATION_SCHEDULES = ['warmup', 'constant'] as const;

/** The strategies that start with a linear probe (epoch 0). */
export const PROBING_STRATEGIES: readonly Strategy[] = ['linear-probe', 'lp-ft', 'auto'];

/** Every Trainer option (the one list: the CLI's --config keys derive from it). */
export const TRAINER_OPTION_KEYS = ['strategy', 'trainFrom', 'probe', 'assess', 'unfreeze', 'epochs', 'optimizer', 'lr', 'backboneLr', 'weightDecay', 'noDecayNormBias', 'momentum', 'nesterov', 'dampening', 'betas', 'eps', 'alpha', 'schedule', 'labelSmoothing', 'clipGradNorm', 'accumulate', 'precision', 'lossScale', 'freezeBatchNormStats', 'monitor', 'earlyStopping', 'checkpointDir', 'resumeFrom', 'signal', 'seed', 'tta', 'featureCache', 'featureCacheViews', 'featureCacheMaxBytes', 'distributed', 'domainAdaptation'] as const;

/**
 * The Trainer's defaults (the native side receives every value; the CLI's help prints these).
 * `strategy`: feature-extract with pretrained weights, else full; `backboneLr`: lr × backboneLrFactor; `momentum`:
 * 0.9 for SGD, else 0; `precision`: the model's; `monitor`: valAccuracy with validation data, else accuracy.
 */
export const TRAINER_DEFAULTS = {
  epochs: 25,
  optimizer: 'adam' as Optimizer,
  lr: 1e-3,
  backboneLrFactor: 0.1,
  weightDecay: 0,
  noDecayNormBias: true,
  sgdMomentum: 0.9,
  nesterov: false,
  dampening: 0,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  rmspropAlpha: 0.99,
  labelSmoothing: 0,
  /** 0: no clipping */
  clipGradNorm: 0,
  accumulate: 1,
  freezeBatchNormStats: true as boolean | 'all',
  featureCache: 'auto' as boolean | 'auto',
  featureCacheViews: 1,
  featureCacheMaxBytes: 4 * 2 ** 30,
  earlyStoppingMinDelta: 0,
  restoreBest: true,
  tta: false,
  /** `'lp-ft'`: fine-tuning epochs after the probe, and the rate of head and backbone while fine-tuning */
  lpftEpochs: 5,
  lpftLr: 1e-4,
};

/** Domain adaptation's defaults. */
export const DOMAIN_ADAPTATION_DEFAULTS = { weight: 1, schedule: 'warmup' as (typeof DOMAIN_ADAPTATION_SCHEDULES)[number], hidden: 1024, kernels: 5, warmupGamma: 10 };

/** GradScaler defaults (torch.amp.GradScaler's). */
export const LOSS_SCALE_DEFAULTS = { initScale: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000 };
