// An ONNX graph under construction (nodes, initializers, inputs/outputs) and
// its serialisation through onnx-proto's protobufjs classes.
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** ONNX opset the exporter writes (LayerNormalization exists; Reduce* take `axes` as an attribute). */
export const OPSET = 17;
/** IR version of onnx-proto's schema (ONNX 1.10). */
export const IR_VERSION = 8;

export type AttrValue = number | number[] | string | { floats: number[] } | { float: number };

/** Attribute values: integers (and integer lists) become INT(S); use {float} / {floats} for floats. */
export type Attrs = Record<string, AttrValue>;

/** Initializer data: float32, int64 (shapes), and the int8/uint8/int32 of a quantized graph. */
export type InitData = Float32Array | BigInt64Array | Int8Array | Uint8Array | Int32Array;

/** An ONNX node as onnx-proto holds it (passes such as quantize.ts read and rewrite them). */
export type OnnxNode = import('onnx-proto').onnx.INodeProto;

interface PendingInit {
  name: string;
  dims: number[];
  data: InitData;
}

function dataTypeOf(d: InitData): number {
  const DT = onnx.TensorProto.DataType;
  if (d instanceof Float32Array) return DT.FLOAT;
  if (d instanceof BigInt64Array) return DT.INT64;
  if (d instanceof Int8Array) return DT.INT8;
  if (d instanceof Uint8Array) return DT.UINT8;
  return DT.INT32;
}

export class GraphBuilder {
  private nodes: OnnxNode[] = [];
  private readonly inits: PendingInit[] = [];
  private readonly initNames = new Set<string>();
  private counter = 0;

  /** An independent copy (nodes copied; initializer data shared, as passes replace it rather than write it). */
  clone(): GraphBuilder {
    const g = new GraphBuilder();
    g.nodes = this.nodes.map((n) => ({ ...n, input: [...(n.input ?? [])], output: [...(n.output ?? [])] }));
    g.inits.push(...this.inits.map((i) => ({ ...i, dims: [...i.dims] })));
    for (const n of this.initNames) g.initNames.add(n);
    g.counter = this.counter;
    return g;
  }

  /** A fresh value name. */
  fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  hasInitializer(name: string): boolean {
    return this.initNames.has(name);
  }

  /** Adds an initializer (once per name). */
  initializer(name: string, dims: readonly number[], data: InitData): string {
    if (this.initNames.has(name)) return name;
    this.initNames.add(name);
    this.inits.push({ name, dims: [...dims], data });
    return name;
  }

  /** An initializer's dims and data, or undefined when `name` is not one. */
  initializerOf(name: string): { dims: number[]; data: InitData } | undefined {
    const t = this.initNames.has(name) ? this.inits.find((i) => i.name === name) : undefined;
    return t ? { dims: t.dims, data: t.data } : undefined;
  }

  /** The nodes in graph order (a pass rewrites them with setNodes). */
  get nodeList(): readonly OnnxNode[] {
    return this.nodes;
  }

  /** Replaces the node list (graph passes), then drops initializers no node reads any more. */
  setNodes(nodes: OnnxNode[]): void {
    this.nodes = nodes;
    const used = new Set(nodes.flatMap((n) => n.input ?? []));
    for (let i = this.inits.length - 1; i >= 0; i--) {
      const name = this.inits[i]!.name;
      if (!used.has(name)) {
        this.inits.splice(i, 1);
        this.initNames.delete(name);
      }
    }
  }

  /** A constant int64 vector (shapes, axes, pads). */
  ints(values: readonly number[], hint = 'const'): string {
    return this.initializer(this.fresh(hint), [values.length], BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  /** A constant float32 scalar (broadcasts in elementwise ops). */
  scalar(value: number, hint = 'scalar'): string {
    return this.initializer(this.fresh(hint), [], Float32Array.of(value));
  }

  /** Appends a node; returns its (first) output name. */
  node(
    opType: string,
    inputs: readonly string[],
    attrs: Attrs = {},
    outputs: readonly string[] = [this.fresh(opType.toLowerCase())],
    name?: string,
  ): string {
    const attribute = Object.entries(attrs).map(([k, v]) => attribute_(k, v));
    this.nodes.push({
      opType,
      input: [...inputs],
      output: [...outputs],
      attribute,
      name: name ?? this.fresh(`n_${opType}`),
    });
    return outputs[0]!;
  }

  /**
   * Serialises the model: one float32 input [batch, ...inputDims] and float32 outputs [batch, ...dims]
   * (an output without dims has no declared shape: the calibration graph's extra outputs).
   */
  encode(o: {
    input: string;
    inputDims: readonly number[];
    outputs: readonly { name: string; dims?: readonly number[] }[];
    producer: string;
    producerVersion: string;
    docString?: string;
    metadata?: Record<string, string>;
  }): Uint8Array {
    const valueInfo = (name: string, dims?: readonly number[]) => ({
      name,
      type: {
        tensorType: {
          elemType: onnx.TensorProto.DataType.FLOAT,
          ...(dims ? { shape: { dim: [{ dimParam: 'batch' }, ...dims.map((d) => ({ dimValue: d }))] } } : {}),
        },
      },
    });
    const initializer = this.inits.map((t) => ({
      name: t.name,
      dims: t.dims,
      dataType: dataTypeOf(t.data),
      // Little-endian raw bytes, as ONNX requires (this machine and every Node platform we run on are LE).
      rawData: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    }));
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: o.producer,
      producerVersion: o.producerVersion,
      docString: o.docString ?? '',
      metadataProps: Object.entries(o.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: 'goodsrec',
        node: this.nodes,
        initializer,
        input: [valueInfo(o.input, o.inputDims)],
        output: o.outputs.map((v) => valueInfo(v.name, v.dims)),
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  get nodeCount(): number {
    return this.nodes.length;
  }
  /** Op types used, with counts (for reports and tests). */
  opCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const n of this.nodes) out[n.opType!] = (out[n.opType!] ?? 0) + 1;
    return out;
  }
}

function attribute_(name: string, v: AttrValue): import('onnx-proto').onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new TypeError(`ONNX attribute ${name}: ${v} is not an integer (use {float})`);
    return { name, type: T.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.FLOAT, f: v.float };
}
