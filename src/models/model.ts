// The surface every classifier of the zoo has (timm's): features, head,
// classifier reset, feature width, and the data config it was made for.
import type * as T from '../tensor/index.js';
import { Module } from '../nn/module.js';

/** What a model expects of its input and how its classifier is named (timm's pretrained_cfg). */
export interface ModelCfg {
  /** [channels, height, width] at which the model is usually trained/evaluated. */
  inputSize: [number, number, number];
  mean: [number, number, number];
  std: [number, number, number];
  interpolation: 'bilinear' | 'bicubic' | 'nearest';
  /** Resize so the crop is this fraction of the resized image (eval transform). */
  cropPct: number;
  /** State-dict prefix of the classifier ('fc' for ResNets): dropped from pretrained weights when the class count differs. */
  classifier: string;
  /** State-dict prefix of the first convolution (for in-channel adaptation). */
  firstConv: string;
  /** Classes of the reference weights. */
  numClasses: number;
  /** Where reference weights come from (informational). */
  source?: string;
}

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

/** Base class of image classifiers: forward = forwardHead(forwardFeatures(x)). */
export abstract class ClassifierModel extends Module {
  /** Width of the pooled feature that the classifier reads. */
  abstract readonly numFeatures: number;
  /** The config this instance was created with (set by createModel). */
  pretrainedCfg: ModelCfg | undefined;
  private classCount = 0;

  /** Classes the classifier predicts (0: no classifier). */
  get numClasses(): number {
    return this.classCount;
  }

  /** Records the class count of a new classifier, here and in pretrainedCfg (constructors and resetClassifier). */
  protected setNumClasses(numClasses: number): void {
    this.classCount = numClasses;
    if (this.pretrainedCfg) this.pretrainedCfg = { ...this.pretrainedCfg, numClasses };
  }

  /** Unpooled features of the last stage, [N, C, H, W]. */
  abstract forwardFeatures(x: T.Tensor): T.Tensor;
  /** Pooling (+ dropout) + classifier; with preLogits the pooled feature [N, numFeatures]. */
  abstract forwardHead(features: T.Tensor, preLogits?: boolean): T.Tensor;
  /** Replaces the classifier by a freshly initialised one (0 classes: no classifier, forward gives pooled features). */
  abstract resetClassifier(numClasses: number): void;
  /** The classifier module. */
  abstract getClassifier(): Module;

  override forward(x: T.Tensor): T.Tensor {
    const f = this.forwardFeatures(x);
    const out = this.forwardHead(f);
    if (f !== x && f !== out) f.dispose();
    return out;
  }
}
