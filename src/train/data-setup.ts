// The data side of a training run: the dataset split as the config says, the normalisation statistics,
// pretrained weights, and the evaluation pre-processing, recorded in the run folder by rank 0 before the
// first step (or checked against a resumed run's record).
import { resolve } from 'node:path';
import * as T from '../tensor/index.js';
import {
  DataLoader,
  classCounts,
  computeChannelStats,
  loadDataset,
  selectSplits,
  subsetDataset,
  type ChannelStats,
  type Dataset,
  type Triple,
} from '../data/index.js';
import { checkArchitecture, resolvePretrained, type ResolvedPretrained } from '../hub/index.js';
import type { TrainConfig } from '../run/config.js';
import { configNormalization, preprocessFromConfig, trainPipeline, type PreprocessConfig } from '../run/pipelines.js';
import type { RunFolder, RunInfo } from '../run/run-folder.js';
import { cpuFeatures } from '../util/cpu-features.js';
import type { AmpChoice } from './amp-choice.js';
import { goodsrecVersion } from '../util/version.js';
import { sha256, type DistributedSession } from '../distributed/session.js';
import { reportSkippedInputs } from './run-start.js';

/** Loads and splits the dataset as the config says; the class list covers every split. */
export function prepareDataset(c: TrainConfig): { all: Dataset; train: Dataset; val: Dataset | null } {
  const all = loadDataset(c.data.root);
  let train = selectSplits(all, c.data.trainSplit);
  if (train.samples.length === 0) {
    const splits = [...new Set(all.samples.map((s) => s.split))].join(', ') || 'none';
    throw new Error(`dataset ${c.data.root}: split '${c.data.trainSplit}' has no images (splits found: ${splits})`);
  }
  if (c.data.fraction < 1) train = subsetDataset(train, { fraction: c.data.fraction, seed: c.seed });
  const val = c.data.valSplit ? selectSplits(all, c.data.valSplit) : null;
  if (val && val.samples.length === 0)
    throw new Error(
      `dataset ${c.data.root}: validation split '${c.data.valSplit}' has no images (set data.valSplit='' to train without validation)`,
    );
  return { all, train, val };
}

/** Library and machine versions a run records (versions.json). */
export function versions(device: T.Device, amp?: AmpChoice): Record<string, unknown> {
  const b = T.buildInfo();
  return {
    goodsrec: goodsrecVersion(),
    node: process.version,
    libtorch: b.torchVersion,
    cuda: b.cuda,
    cudaCompiled: b.cudaCompiled,
    cudaDevices: b.cudaDevices,
    nccl: b.nccl,
    mkldnn: b.mkldnn,
    malloc: T.getMallocPolicy(),
    device,
    deviceName: T.describeDevice(device),
    threads: T.getNumThreads(),
    platform: `${process.platform}-${process.arch}`,
    cpu: cpuFeatures(),
    ...(amp ? { amp } : {}),
  };
}

export interface TrainingData {
  all: Dataset;
  train: Dataset;
  val: Dataset | null;
  norm: ChannelStats;
  pretrained: ResolvedPretrained | null;
  preprocess: PreprocessConfig;
  /** Dataset entries that are not readable image files. */
  skippedInputs: number;
}

/**
 * The dataset and its statistics (class list over every split; stored with the model), the pretrained
 * weights, and the evaluation pre-processing; rank 0 records them in the run folder (or checks a resumed
 * run's classes).
 */
export async function prepareData(
  c: TrainConfig,
  folder: RunFolder,
  stored: RunInfo | null,
  o: { dist: DistributedSession | null; device: T.Device; amp?: AmpChoice; log: (line: string) => void },
): Promise<TrainingData> {
  const { dist, log } = o;
  const isMain = dist === null || dist.isMain;
  const { all, train: trainDs, val: valDs } = prepareDataset(c);
  const skippedInputs = reportSkippedInputs(folder, [trainDs, valDs], log, isMain);
  let norm: ChannelStats;
  if (c.input.mean === 'dataset' || c.input.std === 'dataset') {
    if (stored) norm = { mean: stored.preprocess.mean, std: stored.preprocess.std };
    else {
      log('computing mean/std of the training split');
      const s = await computeChannelStats(trainDs);
      norm = {
        mean: c.input.mean === 'dataset' ? s.mean : (c.input.mean as Triple),
        std: c.input.std === 'dataset' ? s.std : (c.input.std as Triple),
      };
    }
  } else norm = configNormalization(c);
  // Pretrained weights by name (downloaded into the shared caches); not needed to resume.
  let pre: ResolvedPretrained | null = null;
  if (c.model.pretrained && !stored) {
    pre = await resolvePretrained(c.model.pretrained, { log });
    checkArchitecture(pre, c.model.name);
  }
  const record = pre?.cfg
    ? { name: pre.name, architecture: pre.architecture, ...(pre.commit ? { commit: pre.commit } : {}), cfg: pre.cfg }
    : undefined;
  const preprocess = preprocessFromConfig(c, norm, record);
  dist?.checkAgreement({
    config: sha256({ ...c, out: resolve(c.out) }),
    dataset: sha256(trainDs.samples.map((s) => [s.path, s.label, s.split])),
  });

  if (!isMain) {
    /* rank 0 writes the run folder */
  } else if (!stored) {
    folder.writeFiles({
      config: c,
      classes: all.classes,
      preprocess,
      versions: versions(o.device, o.amp),
      dataset: {
        root: resolve(c.data.root),
        classes: all.classes.length,
        train: trainDs.samples.length,
        val: valDs?.samples.length ?? 0,
        trainSplit: c.data.trainSplit,
        valSplit: c.data.valSplit,
        fraction: c.data.fraction,
        trainCounts: classCounts(trainDs),
      },
    });
  } else if (JSON.stringify(stored.classes) !== JSON.stringify(all.classes)) {
    throw new Error(
      `--resume: the dataset's classes changed since the run started (${stored.classes.length} stored, ${all.classes.length} now)`,
    );
  }
  return { all, train: trainDs, val: valDs, norm, pretrained: pre, preprocess, skippedInputs };
}

/** The training split's loader: augmentation pipeline, sampler, decode workers, cache; one shard per rank. */
export function createTrainLoader(
  c: TrainConfig,
  train: Dataset,
  norm: ChannelStats,
  dist: DistributedSession | null,
): DataLoader {
  return new DataLoader({
    dataset: train,
    pipeline: trainPipeline(c, norm),
    batchSize: c.batchSize,
    mode: 'train',
    seed: c.seed,
    sampler: c.classBalanced ? 'class-balanced' : 'shuffle',
    dropLast: train.samples.length > c.batchSize,
    onBadFile: c.data.badFiles,
    ...(c.data.workers > 0 ? { workers: c.data.workers } : {}),
    cacheBytes: Math.floor(c.data.cacheMB * 1024 ** 2),
    ...(dist ? { shard: { rank: dist.rank, worldSize: dist.worldSize } } : {}),
    reuseBuffers: true, // each batch is copied into a tensor before the next is requested
  });
}
