// Pretrained weights from the Hugging Face Hub and torchvision: names, protocol, cache.
export { hubSettings, torchHubCheckpoints, type HubSettings } from './settings.js';
export { HubError, type HubErrorCode } from './errors.js';
export { repoFolderName, repoCache, cachedFile } from './cache.js';
export { hubDownload, hubFileUrl, type HubFile, type HubDownloadOptions } from './download.js';
export { TORCHVISION_WEIGHTS, torchvisionDownload, torchvisionWeights, torchvisionBaseUrl } from './torchvision.js';
export {
  parsePretrainedName,
  pretrainedArchitecture,
  resolvePretrained,
  checkArchitecture,
  readTimmConfig,
  zooArchitecture,
  type PretrainedName,
  type PretrainedCfg,
  type ResolvedPretrained,
} from './pretrained.js';
