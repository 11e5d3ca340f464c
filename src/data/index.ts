/** goodsrec data layer: datasets, decoding, transforms, loader, analysis. */
export * from './dataset.js';
export * from './image.js';
export {
  classifyBadImage,
  sniffFormat,
  jpegHasEndMarker,
  type SniffedFormat,
  type ClassifyOptions,
} from './bad-image.js';
export * from './resample.js';
export * from './color.js';
export * from './autoaugment.js';
export * from './autoaugment-apply.js';
export * from './erasing.js';
export * from './transforms.js';
export * from './loader.js';
export * from './stats.js';
export * from './analyze.js';
export * from './native-image.js';
export * from './walk.js';
export { shardOrder, shardLength, type Shard } from './shard.js';
