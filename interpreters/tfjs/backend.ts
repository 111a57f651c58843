/**
 * Backend selection for the tfjs interpreter. The interpreter is written against tfjs-core alone;
 * this module registers the pure-JS cpu backend and the wasm backend, and loads the native
 * TensorFlow backends (tfjs-node-gpu, tfjs-node) only if they are installed, by dynamic import:
 * they are not dependencies (their install scripts download libtensorflow).
 *
 * On cpu and wasm it also installs the composed convolution-gradient kernels of
 * interpreters/tfjs/kernels/ (stock wasm has no Conv2DBackpropFilter; stock cpu computes it at
 * ~0.01 GFLOP/s), and registers the gradients tfjs-core lacks (gradients.ts).
 *
 * wasm (set up by kernels/wasm-threads.ts): the .wasm binaries load offline from the package's
 * dist directory; the rethrowing process listeners its Emscripten glue installs are removed; with
 * `threads` > 1 XNNPACK runs worker threads (which tfjs does not support under Node by itself). A
 * process that used wasm threads may not exit until `shutdownBackend()`.
 */
import { cpus } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result } from '../../dsl/errors.ts';
import { registerGradients } from './gradients.ts';
import { registerSharingIdentity } from './kernels/identity.ts';
import { registerComposedConvKernels } from './kernels/conv-grad.ts';
import { initWasm, shutdownWasm } from './kernels/wasm-threads.ts';

export type BackendName = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The tfjs backend now in use: 'tensorflow', 'wasm' or 'cpu'. */
  readonly name: string;
  /** Compute threads it uses (tensorflow: TensorFlow's own pool, one per core). */
  readonly threads: number;
  /** Which package provided it (e.g. '@tensorflow/tfjs-node-gpu'). */
  readonly provider: string;
}

const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

const INSTALL_HINT =
  'install one next to this project: `npm install --no-save @tensorflow/tfjs-node@4.22.0` (CPU), or ' +
  '`npm install --no-save @tensorflow/tfjs-node-gpu@4.22.0` (NVIDIA GPU: needs CUDA 11.2 and cuDNN 8.1, ' +
  'and set TF_FORCE_GPU_ALLOW_GROWTH=true or it takes all GPU memory); their install scripts download ' +
  'libtensorflow. Or use --backend wasm (the fastest backend without them) or --backend cpu';

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Try the native TensorFlow bindings: the GPU package first, then the CPU one. */
const loadTensorflow = async (): Promise<Result<string>> => {
  const failures: string[] = [];
  for (const pkg of NATIVE_PACKAGES) {
    try {
      // A variable specifier: the packages are optional and not known to the type checker.
      const specifier: string = pkg;
      await import(specifier);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      failures.push(
        code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
          ? `${pkg} is not installed`
          : `${pkg} failed to load: ${errorText(e).split('\n')[0]}`,
      );
      continue;
    }
    if (tf.findBackendFactory('tensorflow') === null)
      return E.left([
        specError(
          '--backend tensorflow',
          `${pkg} loaded but registered no 'tensorflow' backend with this project's @tensorflow/tfjs-core ${tf.version_core}`,
          `install the ${pkg} version matching @tensorflow/tfjs-core (${tf.version_core}) so they share one tfjs-core`,
        ),
      ]);
    return E.right(pkg);
  }
  return E.left([
    specError('--backend tensorflow', `no native TensorFlow backend: ${failures.join('; ')}`, INSTALL_HINT),
  ]);
};

const activate = async (name: string): Promise<Result<void>> => {
  try {
    if (await tf.setBackend(name)) {
      await tf.ready();
      // The cpu backend's one-time "install tfjs-node" banner: selectBackend's own errors say that.
      if (name === 'cpu') Object.assign(tf.backend(), { firstUse: false });
      return E.right(undefined);
    }
    return E.left([specError(`--backend ${name}`, `the ${name} backend failed to initialise`)]);
  } catch (e) {
    return E.left([specError(`--backend ${name}`, `the ${name} backend failed to initialise: ${errorText(e)}`)]);
  }
};

const activateWasm = async (threads: number | undefined): Promise<Result<number>> => {
  try {
    let r = await initWasm({ threads: threads ?? 1 });
    if (threads !== undefined && r.threads !== threads) {
      // Already running with another thread count: start a fresh instance.
      shutdownWasm();
      r = await initWasm({ threads });
    }
    registerComposedConvKernels('wasm');
    registerSharingIdentity();
    return E.right(r.threads);
  } catch (e) {
    return E.left([specError('--backend wasm', `the wasm backend failed to initialise: ${errorText(e)}`)]);
  }
};

export interface BackendOptions {
  /**
   * wasm: XNNPACK threads (1 to 8). Default: 1, or whatever an already running wasm backend uses.
   * Ignored by the other backends.
   */
  readonly threads?: number;
}

/**
 * Make `name` the current tfjs backend. 'auto' takes tensorflow if installed (GPU package first),
 * else wasm, else cpu. Also registers the gradients the interpreter needs (gradients.ts).
 */
export const selectBackend = async (name: BackendName, options: BackendOptions = {}): Promise<Result<BackendInfo>> => {
  const r = await select(name, options);
  // After loading: the union package @tensorflow/tfjs (which tfjs-node loads) registers the stock
  // gradients, whose Tanh / Sigmoid / Exp forms are wrong at second order; ours replace them.
  registerGradients();
  return r;
};

const select = async (name: BackendName, options: BackendOptions): Promise<Result<BackendInfo>> => {
  const native = (provider: string): BackendInfo => ({ name: 'tensorflow', threads: cpus().length, provider });
  const wasm = async (): Promise<Result<BackendInfo>> =>
    E.map((threads: number) => ({ name: 'wasm', threads, provider: '@tensorflow/tfjs-backend-wasm' }))(
      await activateWasm(options.threads),
    );
  switch (name) {
    case 'cpu': {
      registerComposedConvKernels('cpu');
      return E.map(() => ({ name: 'cpu', threads: 1, provider: '@tensorflow/tfjs-backend-cpu' }))(await activate('cpu'));
    }
    case 'wasm':
      return wasm();
    case 'tensorflow': {
      const loaded = await loadTensorflow();
      if (E.isLeft(loaded)) return loaded;
      return E.map(() => native(loaded.right))(await activate('tensorflow'));
    }
    case 'auto': {
      const loaded = await loadTensorflow();
      if (E.isRight(loaded) && E.isRight(await activate('tensorflow'))) return E.right(native(loaded.right));
      const w = await wasm();
      return E.isRight(w) ? w : select('cpu', options);
    }
    default: {
      const other: string = name;
      return E.left([
        specError('--backend', `unknown backend '${other}'`, `use one of ${BACKEND_NAMES.join(', ')}`),
      ]);
    }
  }
};

/**
 * Release the wasm backend (a process that used wasm threads does not exit until it is removed).
 * Safe to call at any time; a later `selectBackend('wasm')` starts a fresh wasm instance.
 */
export const shutdownBackend = (): void => {
  if (tf.findBackendFactory('wasm') !== null) shutdownWasm();
};
