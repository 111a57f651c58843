/**
 * Constant tensors that some ops compute from their fields rather than read from weights, in
 * PyTorch layout and with PyTorch's float32 arithmetic, so every interpreter gets the same values
 * bit for bit (plain JS: no framework).
 */

const f = Math.fround;

/**
 * core/wing.py's AddCoordsTh channels for an H x W map, (k, H, W) row-major, k = 2 or 3:
 * xx = (h / (H - 1)) * 2 - 1 (it varies along the height: wing.py's `x_coords`), yy the same
 * along the width, and with the radius rr = sqrt(xx^2 + yy^2) / max(rr). Each step is rounded to
 * float32 as torch computes it (float64 then float32 is the correctly rounded float32 result of
 * each +, *, / and sqrt of float32 operands).
 */
export const coordinateChannels = (h: number, w: number, withRadius: boolean): Float32Array => {
  const k = withRadius ? 3 : 2;
  const plane = h * w;
  const out = new Float32Array(k * plane);
  let maxR = 0;
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++) {
      const xx = f(f(f(i / (h - 1)) * 2) - 1);
      const yy = f(f(f(j / (w - 1)) * 2) - 1);
      const o = i * w + j;
      out[o] = xx;
      out[plane + o] = yy;
      if (withRadius) {
        const r = f(Math.sqrt(f(f(xx * xx) + f(yy * yy))));
        out[2 * plane + o] = r;
        if (r > maxR) maxR = r;
      }
    }
  if (withRadius) for (let o = 2 * plane; o < 3 * plane; o++) out[o] = f(out[o]! / maxR);
  return out;
};

/**
 * core/model.py's HighPass kernel, torch.tensor([[-1, -1, -1], [-1, 8., -1], [-1, -1, -1]]) / w_hpf
 * (float32 division by the float32 w_hpf), 3x3 row-major.
 */
export const highPassKernel = (wHpf: number): Float32Array => {
  const d = f(wHpf);
  return Float32Array.from([-1, -1, -1, -1, 8, -1, -1, -1, -1], (v) => f(v / d));
};

/** core/wing.py's shift(x, rows) as row indices: out row h reads input row (h + rows) mod H. */
export const shiftedRows = (h: number, rows: number): number[] => {
  const r = ((rows % h) + h) % h;
  return Array.from({ length: h }, (_, i) => (i + r) % h);
};
