// Peak convolution throughput on this machine, for the bench README: one large 1x1 (a GEMM) and two 3x3
// convolutions, wasm XNNPACK with 1 and 2 threads. Run: node --import tsx bench/peak.ts (PyTorch: python3 bench/peak.py)
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
for (const threads of [1, 2]) {
  await selectBackend('wasm', { threads });
  for (const [k, c, hw] of [[1, 512, 64], [3, 512, 32], [3, 256, 64]]) {
    const x = tf.randomNormal([1, hw, hw, c]) as tf.Tensor4D;
    const w = tf.randomNormal([k, k, c, c]) as tf.Tensor4D;
    tf.conv2d(x, w, 1, 'same').dispose();
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) { const y = tf.conv2d(x, w, 1, 'same'); y.dataSync(); y.dispose(); }
    const s = (performance.now() - t0) / 5 / 1000;
    console.log(`wasm:${threads} conv ${k}x${k} ${c}->${c} at ${hw}x${hw}: ${(2 * hw * hw * c * c * k * k / s / 1e9).toFixed(1)} GFLOP/s`);
    tf.dispose([x, w]);
  }
  shutdownBackend();
}
