import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import * as E from 'fp-ts/lib/Either.js';
import { unzipSync, zipSync } from 'fflate';
import { type FakeStorage, type W, SYS_INFO, ascii, concat, f32Storage, legacyFile, pickle, tensorW, u32le, u64le, zipFile } from './helpers/torchfiles.ts';
import type { Result } from '../dsl/errors.ts';
import { type PValue, type PickleHooks, refuse, unpickle } from '../io/pickle.ts';
import { readSafetensors } from '../io/safetensors.ts';
import { type HostTensor, type TensorMap, numelOf, toFloat32 } from '../io/tensor.ts';
import { type TorchCheckpoint, readTorchCheckpoint } from '../io/torch.ts';

const FIXTURES = '/work/shared/fixtures/torch';
const fixture = (dir: string, file: string): Uint8Array => readFileSync(join(FIXTURES, dir, file));

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(`expected Right, got ${JSON.stringify(r.left)}`);
  return r.right;
};
const leftText = <A>(r: Result<A>): string => {
  if (E.isRight(r)) assert.fail('expected Left, got Right');
  return r.left.map((e) => `${e.path}: ${e.message} ${e.hint}`).join('\n');
};
const flat = (c: TorchCheckpoint): TensorMap => {
  assert.equal(c.kind, 'flat');
  return (c as { tensors: TensorMap }).tensors;
};
const nested = (c: TorchCheckpoint): ReadonlyMap<string, TensorMap> => {
  assert.equal(c.kind, 'nested');
  return (c as { nets: ReadonlyMap<string, TensorMap> }).nets;
};

const bytesOf = (t: HostTensor): Buffer => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** The checkpoint's float tensors equal the safetensors ones: same names, shapes and bits. */
const assertMatchesWeights = (ckpt: TensorMap, weights: TensorMap, what: string): void => {
  const floats = [...ckpt].filter(([, t]) => t.dtype === 'float32');
  const ints = [...ckpt].filter(([, t]) => t.dtype !== 'float32');
  for (const [k, t] of ints) {
    assert.equal(t.dtype, 'int64', `${what} ${k}: only int64 buffers besides float32`);
    assert.match(k, /num_batches_tracked$/, `${what} ${k}`);
  }
  assert.deepEqual(floats.map(([k]) => k).sort(), [...weights.keys()].sort(), `${what}: keys`);
  for (const [k, t] of floats) {
    const w = weights.get(k)!;
    assert.deepEqual([...t.shape], [...w.shape], `${what} ${k}: shape`);
    assert.ok(bytesOf(t).equals(bytesOf(w)), `${what} ${k}: data differs`);
  }
};

// ---------------------------------------------------------------------------------------------
// The official fixtures

const cases = readdirSync(FIXTURES).filter((d) => existsSync(join(FIXTURES, d, 'weights.safetensors')));

test('every fixture checkpoint (legacy and zip) equals its weights.safetensors', () => {
  let checked = 0;
  for (const d of cases) {
    const weights = right(readSafetensors(fixture(d, 'weights.safetensors')));
    for (const f of ['model_legacy.ckpt', 'model.ckpt']) {
      if (!existsSync(join(FIXTURES, d, f))) continue;
      assertMatchesWeights(flat(right(readTorchCheckpoint(fixture(d, f), f))), weights, `${d}/${f}`);
      checked++;
    }
  }
  assert.ok(checked >= 9, `only ${checked} checkpoints`);
});

test('inputs at odd byte offsets (Buffer pool slices) read the same', () => {
  const weights = right(readSafetensors(fixture('v1_discriminator', 'weights.safetensors')));
  for (const f of ['model_legacy.ckpt', 'model.ckpt']) {
    const b = fixture('v1_discriminator', f);
    const shifted = new Uint8Array(b.length + 3);
    shifted.set(b, 3);
    assertMatchesWeights(flat(right(readTorchCheckpoint(shifted.subarray(3), f))), weights, `shifted ${f}`);
  }
});

test('v1 generator keeps its num_batches_tracked buffers as int64 scalars', () => {
  const t = flat(right(readTorchCheckpoint(fixture('v1_generator', 'model_legacy.ckpt'))));
  const b = t.get('main.1.num_batches_tracked')!;
  assert.equal(b.dtype, 'int64');
  assert.deepEqual([...b.shape], []);
  assert.equal(b.data.length, 1);
});

test('v2 nets_ema reads as nested {generator, mapping_network, style_encoder}', () => {
  const nets = nested(right(readTorchCheckpoint(fixture('v2_nets_ema', 'model_legacy.ckpt'), 'nets_ema')));
  assert.deepEqual([...nets.keys()].sort(), ['generator', 'mapping_network', 'style_encoder']);
  for (const [net, dir] of [
    ['generator', 'v2_generator'],
    ['mapping_network', 'v2_mapping_network'],
    ['style_encoder', 'v2_style_encoder'],
  ] as const) {
    assertMatchesWeights(nets.get(net)!, right(readSafetensors(fixture(dir, 'weights.safetensors'))), net);
  }
});

// ---------------------------------------------------------------------------------------------
// Files written by real torch (1.13) for cases the fixtures do not cover, zlib + base64. Made with
//   d = OrderedDict(t=base.t(), slice=base[1:3, 2:5], base=base (arange(24).reshape(4, 6)),
//     exp=tensor([1.5, -2.]).reshape(2, 1).expand(2, 3), half=[1, -2, 65504, 6e-8] f16,
//     bf16=[1, -3.5, 1e30] bf16, i64=[1, -2, 2**40], i32=[[7, -8]], u8=[0, 255], i8=[-128, 127],
//     b=[True, False, True], f64=[1/3, -0.] f64, scalar=tensor(3.25), empty=zeros(0, 3),
//     param=Parameter(ones(2)), t64=arange(6.).double().reshape(2, 3).t())
//   torch.save(d, 'mixed_zip.ckpt'); torch.save(d, 'mixed_legacy.ckpt', _use_new_zipfile_serialization=False)
//   torch.save(Sequential(Conv2d(3, 4, 3), BatchNorm2d(4), Linear(5, 6)).state_dict(), legacy format)
// (the last is an OrderedDict whose `_metadata` attribute is set by BUILD).

const unpack = (b64: string): Uint8Array => new Uint8Array(inflateSync(Buffer.from(b64.replace(/\s+/g, ''), 'base64')));

const MIXED_LEGACY = unpack(`
eNp1lct320QUxiXZcRK1KQEKpDzD2+ERHL8iQyFOG0Jb9ZGoFMSjOI6jxCqK5U8eh6Yl1DzipuW5ZMGiyy5Zssw/wZ4tO5ZwDody
RzO2Y6Wd48/yjGZ+986de8ct7abu/fvL/D/jl24vHJlsaWf+jNH3FpSkPaooSj3wmV/xvdKGEzRcvwaVJtgj9MZzGfOcklNbccs1
aDu2ToNss+6UGu4Vp4HYFuJJe4AGG1U/YBgwNTtGPbfGkDDjdpwz/NoaBs14s0k2K2TGcyqMrDT0c8GKEzgrc26F6VAmLKhJW+UG
oFWYH1Sqk6Umc72GXgqc5abrrZSYU2v4QWkjrSOWTNqD3DDNLK85iIsl+rznl9l5MahjwB6mObnsdCFrFLJZJEL3KvUmeTR2lmFo
0VRM8rSNYVM1E23oN6rckwMMBy2MiK15bsXBoSpZrMarUeJ9VUEaXTSHTM2MtXE/AdU2HhCkBxkOW3goDMVyueHg4XuAHpGgMe5S
nPtyRIAeFaDHGB638ES4AedyHU/u4+TSU/kUniKORpxxzgkdepq2prTxjOA8y/CchedDh6plbxUvCJCM3wka6obvRcnOZApGjnxM
EjtO7InQx228ZKrbeFlwX2F41cKk2OjqVB6v9XGPhQczle+yU3vY+WwKU8SOETvN2bFtZDg7K9g5hryFaZFb+SyMPvRpyrAuttAN
R2baMAy8LrFvSOxRjn1TYN9imLFQFNhMGrN92JO1Xh4d61HDQByXQZ7jVNXU2nibYk2HNS/I7zCcsHDS1mhV08Cp/lBsMqdLNnvk
QjqVwmlJPhMe3zbOcn/PCeoCw6IFK6S6Bs73UY9Xy0GX+u4eqpHL44Kkviep73OqLagfMHxo4aOw9Jbxcb+rvu91oRd7GZvKUaZ9
IkNbkqFd4tCygC4zVCyshKFdpRNz+rBzfnPZ68VgtQeeStPkNeltVXrrcvAlAf6UwbOwbid4ZVbKXjlAbX8lZA1KQJ8wKmHqhJmY
EMvBEFhohIXtrNfZJtj+1blM2kCTViu0eoM7ofA6+syM8SO+LEibDFcsXA1J9XJQXsfn97i1wrcOcwIdW3cxNj2dxxdyx9fkjlt8
x18KQ18xfG3hm52ws30dbQvXw7gyCtWOBPZCmMvnCmncIGCCgDfDs+EJ+i3lKW3iOwH9nuEHCz/yO/ki/x/or3M1UptapKhikXKI
R5J4IJJ+iUjmDEYOfChyFw5H7jQ9crIHImd1MBLOkUg0DjmT/FoK21Fl985VVYnJbmtmafcUOj1VPv+7I1pnUJPj/B/nbxrv9JXu
r9a1HkPtDF4I2+8znTljyt7W4uNF+pBapFukXdIfJGVWUUZJ46QUqUhaIC2R6qQWaYf0E+ln0i3SbdKvpN9mu+4pu9zGrtrtLxQ7
v7Q+P1ozCeVu7a+O73LdkHyOyufh4v9sGQcE`);

const MIXED_ZIP = unpack(`
eNqlV19sU1UYP7ftulIGdhNxoMwJimOMbW23roPhuoIVuAjdRaQiunXt3Vq5W/u1p8gApfxZ2UQT1GhITAyPPGp8MT4t4dWYmEii
0USe9MkE33xQ8TvnXLr7Z6xaTvbtru35/fm+c853urjsdBHi8RDbaCE+Mp09rabHzmTzPekkTXbnT2qxaBM5bhhlRyqV0zQ1RbO5
maL3cCGtFtT03myKeoFsU0DqSEhIRsGRorlCKtM9VqJZregdK6gTpayWHqPqTDFXGDsV8IKzoyPRiJOLODM5pYJLQLwxLZekR8Sb
XmjghL3gTjjxmcqXoFFupeAZlYnsll0VWCVLsrsC3oUMM7CaQpMCaxINjFjLplRYm0GhjCvTkHFnOPSRUdkjO2RnBXzIIFWgWUBb
KDyqwLoEFohMJIsqPGZFrmeiLqb2uEC2CuQGChsVeII7VE/n4cn7QO7dD5sQ7qDQxuBc+Cn0TCrQLuBPU9iswBYunElqk/CMwOv1
2IdvVcvxLKcMwFakdFF4jjuagw5ZmoNtgq6TwnYFukQek/4Q7DDRRXl9/aEqZTenDEIPUjop9DJK5xz4GWVAUAYp9CnQzxPMhvog
ZGI8mJuZqrINcLY+CAu2QZ1tJ2PbJdiGKOxW4HnBFgzAsIlt/8zS4kc4WT+MiAJGGZkkOyqwB+uI9d8rCF+gEFPgxYQDJ5fCsM+c
7yxVq4T7OWEIDghCma/IHBxk7l4SZIcoHFYgzsmyYRg1ke3JJAtVMoWTDcARQfayTnaUkb0iyI5RSCjwKp84AcfNxnI5rcr1Gp8S
hhOibK/rZXuDcY0JrnEKSQUmeNkmcRFSJra9udKEtpRomvMNgiq8TerephhfRvBlKbypwMmEmx2VVFJLFkCrblyWvb8XphEuUZhB
+DZ9e+Uo5BUAfsLU6TydhYIZ5YciorAHUCZK2H4vyU62XKcEw1sUTiswyxnyyUJyGs48oFvwT1WqFrxw1iwSgHMis7f1zN5hmZ0X
AmUKFxS4OM9fXLoClxWY42WjWLaKTpQWREG4gkRuCvO85GxzLeAeQ9PvCrKrFN5T4P1Sd1xu9Hxy61j8LzxYLOIP7KU+4rb00p7e
WNSBnVR8Xh7GXxH8wShj3MBYxLiDQUYQj9GO0YsRwYhjjGPkMcoY8xjXMK5j3MC4ifE5xlcjzOPFkZ9nxpGIxUoeN1s9+mPRNlO3
tw/0ybwvMp2dXb98w4g9K+o0k0GbDhajv4bQA/XjEab9w60tv7P+5qpqk2W1d9u0McnB+rTZWCnPZptWIBZdQyz+2dqXh1kO10bd
t+urX/Ah6mccd4f1PyLi4dGfPv25jtd6g7T9j152B9fYTy1Wn5j+WotNMkQW752VCOP9eN+hc7Xz95GdVl5MP1TnEpaHxxcPAFM/
sKltNet87hrqQ1b1vlg0XPcGknTef+6JwV9IhNfj0x/bN7biy9Yajjqtjvpj0a3/0RH7vvUn6jK9zm+vdtVV/1D99SdcufD3Txpr
vo4ayhGr8kAsOlT/4WXrf57v6F/vfF2Xfvhh9SUiMQNfXrq8wO4jZw0Dw1YDg7HorocxcJSP2/fPfZmZSXzxwQkfl1u5D/kNZk6p
hSL+BxCL7vh/boJepvjdZ1NHl+ovOXjv0TWNN2yLzYX9PxQr3nj7+UzYgw3Editb0cY7zYy+a0f7rWjjrdRsQrMvWbZb8D58+avL
OL5fBm5TN94nZnik0Q4PWOHGNm+GX18GHrTCjd3cXLmIxwa3iRu7sRl93Y62aRs7pxm9fpUN3WdFG/ugGX3Tju63oo29zIxu9drQ
IVvRDZ3IjP7Qjh6woo1txIxuWW1Dh61o47k3oz+yowetaOMZNm+X9iZi7xRx2e3u0ie0OXcYepz5+ZtTT79JPBHH7iwyq0+Q+HsN
boHx8fli7r8V/L8J`);

const ORDERED_LEGACY = unpack(`
eNp1lHtMU1ccx/u4FKjIBERRGSLiVmQgfVAK9Fx1MHS7KlqVXZNpV8odrdaWX3uLj62Li0GdmCjxFZFs87WYGV00kzjoOXv4iqLZ
wyWKzMfAObrwh0FnXNbpTh/orHqa9vb8zjmf7++c7+/cNbKNSkewrerv7KUH544pXCObHZDTXx9IVPwIiUTS4HaJLqvLYW4U3B67
ywlSOoEfTkccdlF0CGbBWWe3OEG2gVfSoLiqQTB77KsFD8h9wKj4OBr02FxuEeI4GS+nPbtTBAXH8EyI4XLWQzzHeL1U00plHIJV
pCoeZbW7TnALdZV2q6gESZ4JpCo+ga4oKlwh2OttIsisostttRWavaLd4VGa3UKt1+6oM4uC0+Nymxs1SpCrVHx8SJ/OtNQLwESW
KKscLos4PxJUQhyfSOcU67RqbbGhWA+KcJbWBi9NzDFHhIR5nETFMZw89BEhUcWN4xLpf6kIyo9todSGiZBkguG8Ipxfrd3igWQb
FbcxtsdwjVZbojHASza6WwodQaEc0wQpnLQJUiOYNBFGmiA9vE310DZHxYLUGl2RVgOjo6CMKGhMCDQ2AhonQqYJXg7no47kk/Uc
jN5ggPFRTHYUMyGEyYlgJoqQa4JJfHIY4/Y6nXZnvXm5QN1+5VmcPpTVq1GcKorLC+EmR3D5IrxmgoJw7TzBNVrcUPgUTWegRmj1
OgNMidKKojR1iKaJ0LQi6ExQzKeHaU7vcnOtRbTaBI9ZdFusy4Q60EeoUc9n0Up7bHnJEyFdsVoDBiokpUKlVCgvLyJQJkK5CYxh
NzRDbqBnMy1WF2uApYAsCpgaylTBxa2DaVwcJ10H0yOw10WoMEFl2BFNxJE3Yo6wpFRbVKrTQRVFKShqRhjVBDNDm34zgnlLBM4E
s7w+mB1eRc0QLXUW0QJzwuPVKp5GJTDXB/PClT90aU2c1MNLQ+UJ832wwPa4r4aFPqihfVmkr4G3fcCHx72eWnopF4deBE/bIo05
PVnMYchjSpWJqbnYolHEXMD4mDuTEHNCiUJh6N0RaWum/v8rlTzdsqLP7ppmsvrkD+yiP9vY66O+Izvu9uF3qw8Y0Z4mdLe0G41s
17K/unuMjNtMZMd4dsX+HtLVvp40Vf2OHalm8qEumwQOdZKkS99j7dmTaFT+dpIr9/tVgX1s3xwjZvdxxhOKLDz2na9R1s4W9vat
K2yRvYV9UZ6M5PntRXFH9Nl81d9x2nkJLdDkkJ74FHLh4k58yjIf1dxa1Rmclsle7m/2O3fMRXllTtw2OBYHK43k1loZka/ai9tb
A+WJP+1G13wDqHdXHOndcwjzqs3o9P6JbEFZDk5emcbmvPzQX/Hz58bBBg2790c9GRj/AFu2zMAb9u7C6ysnsz0rH+HpruNYdSSR
5LUYyL+pt7H9vTw288aXKDP+G9R6aZJRSDmPSxfHoc0SA9EJyaS1qAsXHn6ArKP/QAsuHMHBjX2d+rQgOhioYLOXt6H0f34xdk1g
2I6UfnyvLxX1nssgg9sTSH9rF9bVHENHP/oE3VkRwGdynei3JVfQ/eAZ/+Wzd8oPH9CjTWvvIXcpYo9cG002NGzBS2+3ImbmRPaA
L5/d1lvAdt/MRBOW5JP++BZj9tb7+NuDJWR8xhT25uV0dmBbJUlqTkPB8wzWnZDimmVf4YaWneiRO4AvfrAFbZt3FjWmDWcXm7ei
c8MqSNLhR3jdhVPoeDAX/dUxhpy+24sb60rZ6+cY9tOrh/BnQhUu6ygn7x+r7dxUP5J8IcsgQ36m+wv849oHjNX2PXjJjQBSROOD
1m524WoGpx29SHLHLiKkfzeb/BB1/gdMlGUN`);

const values = (t: HostTensor): number[] =>
  t.dtype === 'int64' ? Array.from(t.data as BigInt64Array, Number) : Array.from(toFloat32(t));

test('real torch files: strides, offsets, stride 0, every dtype, scalars, empty, Parameter', () => {
  for (const [name, bytes] of [['legacy', MIXED_LEGACY], ['zip', MIXED_ZIP]] as const) {
    const m = flat(right(readTorchCheckpoint(bytes, name)));
    const expect = (k: string, dtype: string, shape: number[], vals: number[]) => {
      const t = m.get(k);
      assert.ok(t !== undefined, `${name}: ${k} missing`);
      assert.equal(t.dtype, dtype, `${name} ${k}`);
      assert.deepEqual([...t.shape], shape, `${name} ${k}`);
      assert.equal(t.data.length, numelOf(shape), `${name} ${k}`);
      assert.deepEqual(values(t), vals, `${name} ${k}`);
    };
    const arange = (n: number) => Array.from({ length: n }, (_, i) => i);
    expect('base', 'float32', [4, 6], arange(24));
    expect('t', 'float32', [6, 4], arange(24).map((i) => (i % 4) * 6 + Math.floor(i / 4)));
    expect('slice', 'float32', [2, 3], [8, 9, 10, 14, 15, 16]);
    expect('exp', 'float32', [2, 3], [1.5, 1.5, 1.5, -2, -2, -2]);
    expect('half', 'float16', [4], [1, -2, 65504, 2 ** -24]);
    expect('bf16', 'bfloat16', [3], [1, -3.5, 1.0002555517425873e30]);
    expect('i64', 'int64', [3], [1, -2, 2 ** 40]);
    expect('i32', 'int32', [1, 2], [7, -8]);
    expect('u8', 'uint8', [2], [0, 255]);
    expect('i8', 'int8', [2], [-128, 127]);
    expect('b', 'bool', [3], [1, 0, 1]);
    expect('scalar', 'float32', [], [3.25]);
    expect('empty', 'float32', [0, 3], []);
    expect('param', 'float32', [2], [1, 1]);
    expect('t64', 'float64', [3, 2], [0, 3, 1, 4, 2, 5]);
    const f64 = m.get('f64')!.data as Float64Array;
    assert.equal(f64[0], 1 / 3);
    assert.ok(Object.is(f64[1], -0));
  }
});

test('real torch state_dict: OrderedDict with _metadata (BUILD), int64 buffer kept', () => {
  const m = flat(right(readTorchCheckpoint(ORDERED_LEGACY, 'ordered')));
  assert.deepEqual(
    [...m.keys()],
    ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked', '2.weight', '2.bias'],
  );
  assert.deepEqual([...m.get('0.weight')!.shape], [4, 3, 3, 3]);
  assert.equal(m.get('1.num_batches_tracked')!.dtype, 'int64');
  assert.deepEqual(values(m.get('1.running_var')!), [1, 1, 1, 1]);
});

// ---------------------------------------------------------------------------------------------
test('hand-built checkpoints in both formats read like torch.save output', () => {
  const s = f32Storage('0', [0, 1, 2, 3, 4, 5]);
  for (const format of ['zip', 'legacy'] as const) {
    const main: W = {
      dict: [
        ['w', tensorW(s, format, 0, [2, 3], [3, 1])],
        ['wt', tensorW(s, format, 0, [3, 2], [1, 3])],
        ['tail', tensorW(s, format, 4, [2], [1])],
      ],
      ordered: true,
    };
    const file = format === 'zip' ? zipFile(main, [s]) : legacyFile(main, [s]);
    const m = flat(right(readTorchCheckpoint(file, format)));
    assert.deepEqual(values(m.get('w')!), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(values(m.get('wt')!), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(values(m.get('tail')!), [4, 5]);
  }
  // OrderedDict([(k, v)]) and torch < 0.4's _rebuild_tensor(storage, offset, size, stride).
  const pairs: W = {
    reduce: [
      { global: ['collections', 'OrderedDict'] },
      [
        {
          list: [
            {
              tuple: [
                'old',
                {
                  reduce: [
                    { global: ['torch._utils', '_rebuild_tensor'] },
                    [{ persid: { tuple: ['storage', { global: ['torch', 'FloatStorage'] }, '0', 'cpu', 6, null] } }, 1, { tuple: [2] }, { tuple: [2] }],
                  ],
                },
              ],
            },
          ],
        },
      ],
    ],
  };
  assert.deepEqual(values(flat(right(readTorchCheckpoint(legacyFile(pairs, [s])))).get('old')!), [1, 3]);
});

test('8-byte strided gather keeps exact bits; legacy storage views; big-endian zip', () => {
  // int64 permuted 3-D tensor: [2, 3, 2] viewed with strides of a transpose.
  const longs = new BigInt64Array(12).map((_, i) => BigInt(i) * 0x100000001n - 5n);
  const ls: FakeStorage = { key: 'L', type: 'LongStorage', numel: 12, bytes: new Uint8Array(longs.buffer) };
  const m = flat(right(readTorchCheckpoint(zipFile({ dict: [['p', tensorW(ls, 'zip', 0, [2, 2, 3], [6, 1, 2])]] }, [ls]))));
  const p = m.get('p')!.data as BigInt64Array;
  const want: bigint[] = [];
  for (let a = 0; a < 2; a++) for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) want.push(longs[a * 6 + c * 2 + b]!);
  assert.deepEqual([...p], want);

  // Legacy view_metadata: ('view', offset 2, size 3) into root storage 'r'.
  const r = f32Storage('r', [10, 11, 12, 13, 14, 15]);
  const viewed = legacyFile({ dict: [['v', tensorW(r, 'legacy', 1, [2], [1], { tuple: ['view', 2, 3] })]] }, [r]);
  assert.deepEqual(values(flat(right(readTorchCheckpoint(viewed))).get('v')!), [13, 14]);
  const badView = legacyFile({ dict: [['v', tensorW(r, 'legacy', 0, [2], [1], { tuple: ['view', 5, 3] })]] }, [r]);
  assert.match(leftText(readTorchCheckpoint(badView)), /view \[5, 8\) exceeds its storage/);

  // torch >= 2.1 records the byte order; big-endian data is swapped on load.
  const be = new Uint8Array(8);
  new DataView(be.buffer).setFloat32(0, 1.5, false);
  new DataView(be.buffer).setFloat32(4, -7.25, false);
  const bs: FakeStorage = { key: '0', type: 'FloatStorage', numel: 2, bytes: be };
  const bigFile = zipFile({ dict: [['x', tensorW(bs, 'zip', 0, [2], [1])]] }, [bs], {
    'archive/byteorder': new TextEncoder().encode('big'),
  });
  assert.deepEqual(values(flat(right(readTorchCheckpoint(bigFile))).get('x')!), [1.5, -7.25]);
});

test("'module.' prefixes (DataParallel) are stripped", () => {
  // Rewrite the zip fixture's pickle: every key ('main.0.weight', 'conv1.weight', ...) gets 'module.'.
  const files = unzipSync(fixture('v1_discriminator', 'model.ckpt'));
  const pkl = files['model/data.pkl']!;
  const out: number[] = [];
  let renamed = 0;
  for (let i = 0; i < pkl.length; i++) {
    const len = pkl[i] === 0x58 && i + 5 <= pkl.length ? new DataView(pkl.buffer, pkl.byteOffset + i + 1, 4).getUint32(0, true) : -1;
    const str = len > 0 && len < 200 ? new TextDecoder().decode(pkl.subarray(i + 5, i + 5 + len)) : '';
    if (/\.(weight|bias)$/.test(str)) {
      out.push(0x58, ...u32le(len + 7), ...ascii(`module.${str}`));
      i += 4 + len;
      renamed++;
    } else out.push(pkl[i]!);
  }
  assert.equal(renamed, 12);
  files['model/data.pkl'] = new Uint8Array(out);
  const rewritten = zipSync(files, { level: 0 });
  const m = flat(right(readTorchCheckpoint(rewritten, 'dp.ckpt')));
  assertMatchesWeights(m, right(readSafetensors(fixture('v1_discriminator', 'weights.safetensors'))), 'module.');

  // Nested too, and a collision once stripped is an error.
  const s = f32Storage('0', [1, 2]);
  const nestedFile = legacyFile({ dict: [['generator', { dict: [['module.a', tensorW(s, 'legacy', 0, [2], [1])]] }]] }, [s]);
  assert.deepEqual([...nested(right(readTorchCheckpoint(nestedFile))).get('generator')!.keys()], ['a']);
  const clash = legacyFile(
    { dict: [['module.a', tensorW(s, 'legacy', 0, [2], [1])], ['a', tensorW(s, 'legacy', 0, [1], [1])]] },
    [s],
  );
  assert.match(leftText(readTorchCheckpoint(clash)), /'a' and 'a' collide|collide/);
});

// ---------------------------------------------------------------------------------------------
// Refusals

test('globals outside the allowlist are refused by name, in both formats', () => {
  const evil: Array<[string, W]> = [
    ['os.system', { reduce: [{ global: ['os', 'system'] }, ['echo pwned']] }],
    ['posix.system', { global: ['posix', 'system'] }],
    ['builtins.eval', { reduce: [{ global: ['builtins', 'eval'] }, ['1+1']] }],
    ['__builtin__.eval', { reduce: [{ global: ['__builtin__', 'eval'] }, ['1+1']] }],
    ['torch.storage._load_from_bytes', { reduce: [{ global: ['torch.storage', '_load_from_bytes'] }, ['x']] }],
    ['torch._utils._rebuild_device_tensor_from_numpy', { global: ['torch._utils', '_rebuild_device_tensor_from_numpy'] }],
    ['subprocess.Popen', { raw: [0x8c, 10, ...ascii('subprocess'), 0x8c, 5, ...ascii('Popen'), 0x93] }], // STACK_GLOBAL
    ['builtins.exec', { raw: [0x8c, 8, ...ascii('builtins'), 0x8c, 4, ...ascii('exec'), 0x93, 0x8c, 1, 0x31, 0x85, 0x52] }],
  ];
  for (const [name, payload] of evil) {
    const main: W = { dict: [['w', payload]] };
    for (const file of [legacyFile(main, []), zipFile(main, [])]) {
      const msg = leftText(readTorchCheckpoint(file, 'evil.ckpt'));
      assert.ok(msg.includes(`'${name}'`), `${name}: ${msg}`);
      assert.match(msg, /refusing to load global .* not on the allowlist/);
      assert.match(msg, /weights_only/);
    }
    // A bare pickle (the first thing a legacy reader unpickles) is refused the same way.
    assert.ok(leftText(readTorchCheckpoint(pickle(payload), 'bare')).includes(`'${name}'`));
  }
  // The classic payload, byte for byte: cos\nsystem\n(S'ls'\ntR.
  const classic = new Uint8Array([0x80, 0x02, ...ascii('cos\nsystem\n'), 0x58, 2, 0, 0, 0, ...ascii('ls'), 0x85, 0x52, 0x2e]);
  assert.match(leftText(readTorchCheckpoint(classic)), /'os\.system'/);
});

test('other code-reaching constructs are refused', () => {
  const s = f32Storage('0', [1]);
  const refusals: Array<[W, RegExp]> = [
    [{ raw: [0x28, 0x69, ...ascii('os\nsystem\n')] }, /INST.*not supported/], // INST
    [{ raw: [0x28, 0x63, ...ascii('os\nsystem\n'), 0x6f] }, /'os\.system'/], // OBJ (its class via GLOBAL)
    [{ raw: [0x82, 1] }, /EXT1.*not supported/],
    [{ raw: [0x97] }, /NEXT_BUFFER/],
    [{ reduce: [{ global: ['torch', 'FloatStorage'] }, []] }, /cannot be called/],
    [{ persid: { tuple: ['module', 'x.py', 'source'] } }, /"module" is not supported.*pickled nn\.Module/],
    [{ persid: { tuple: ['storage', { global: ['torch', 'ShortStorage'] }, '0', 'cpu', 1, null] } }, /torch\.ShortStorage.*not supported/],
    [{ persid: 'text' }, /persistent id must be a tuple/],
  ];
  for (const [payload, re] of refusals) {
    assert.match(leftText(readTorchCheckpoint(legacyFile({ dict: [['w', payload]] }, [s], []))), re);
  }
});

test('checkpoints that are not (dicts of) state_dicts are explained', () => {
  const s = f32Storage('0', [1, 2]);
  const t = tensorW(s, 'legacy', 0, [2], [1]);
  const shapes: Array<[W, RegExp]> = [
    [{ dict: [['epoch', 3], ['state_dict', { dict: [['w', t]] }]] }, /entry 'epoch' is int 3/],
    [{ dict: [['g', { dict: [['w', t], ['lr', 0.5]] }]] }, /entry 'g' is not a state_dict: its 'lr' is float 0\.5/],
    [{ list: [t] }, /checkpoint holds list of 1, not a dict/],
    [{ dict: [[1, t]] }, /key int 1 is not a str/],
  ];
  for (const [main, re] of shapes) assert.match(leftText(readTorchCheckpoint(legacyFile(main, [s]))), re);
  assert.equal(flat(right(readTorchCheckpoint(legacyFile({ dict: [] }, [])))).size, 0);
});

test('inconsistent or hostile structure is an error value, quickly', () => {
  const s = f32Storage('0', [1, 2, 3, 4]);
  const one = f32Storage('0', [1]);
  const mk = (main: W, st: FakeStorage[] = [s], keys?: string[]) => legacyFile(main, st, keys);
  const huge = 2 ** 40;
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['empty', new Uint8Array(0), /not a PyTorch checkpoint/],
    ['safetensors', fixture('v1_discriminator', 'io.safetensors'), /safetensors/],
    ['wrong magic', concat([pickle(12345n), pickle(1001)]), /magic number/],
    ['wrong protocol', concat([pickle(0x1950a86a20f9469cfc6cn), pickle(1000)]), /protocol version/],
    ['past storage', mk({ dict: [['w', tensorW(s, 'legacy', 2, [3], [1])]] }), /reads past the end of its storage/],
    ['stride past storage', mk({ dict: [['w', tensorW(s, 'legacy', 0, [2, 2], [3, 1])]] }), /reads past the end/],
    ['rank mismatch', mk({ dict: [['w', tensorW(s, 'legacy', 0, [2, 2], [1])]] }), /disagree/],
    ['negative size', mk({ dict: [['w', tensorW(s, 'legacy', 0, [-1], [1])]] }), /non-negative integer/],
    [
      'stride-0 bomb',
      mk({ dict: [['w', tensorW(one, 'legacy', 0, [huge, huge], [0, 0])]] }, [one]),
      /too many elements|output budget/,
    ],
    ['budget', mk({ dict: [['w', tensorW(one, 'legacy', 0, [1 << 15, 1 << 15], [0, 0])]] }, [one]), /output budget/],
    ['storage numel lie', mk({ dict: [['w', tensorW({ ...s, numel: huge }, 'legacy', 0, [4], [1])]] }), /record holds 4 elements/],
    ['missing storage data', mk({ dict: [['w', tensorW(s, 'legacy', 0, [4], [1])]] }, [], []), /no data in the file/],
    ['unreferenced storage', mk({ dict: [] }, [s]), /no tensor refers to it/],
    ['truncated storage', mk({ dict: [['w', tensorW(s, 'legacy', 0, [4], [1])]] }).subarray(0, -3), /truncated/],
    [
      'dtype clash',
      mk({ dict: [['a', tensorW(s, 'legacy', 0, [4], [1])], ['b', tensorW({ ...s, type: 'IntStorage' }, 'legacy', 0, [4], [1])]] }),
      /declared twice/,
    ],
    ['no STOP', concat([pickle(0x1950a86a20f9469cfc6cn)]).subarray(0, -1), /without a STOP/],
    ['huge BINUNICODE8', new Uint8Array([0x80, 4, 0x8d, ...u64le(2n ** 62n), 0x2e]), /exceeds the \d+ bytes that remain/],
    ['huge BINUNICODE', new Uint8Array([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x2e]), /needs 2147483647 more bytes/],
    ['huge LONG4', new Uint8Array([0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0x7f, 0x2e]), /LONG4 of 2147483647 bytes/],
    ['deep marks', new Uint8Array([0x80, 2, ...new Array<number>(70_000).fill(0x28), 0x2e]), /nested MARKs/],
    ['memo miss', new Uint8Array([0x80, 2, 0x6a, 1, 2, 3, 4, 0x2e]), /memo key 67305985 was never stored/],
    ['empty stack', new Uint8Array([0x80, 2, 0x2e]), /empty stack/],
    ['pop across mark', new Uint8Array([0x80, 2, 0x4e, 0x28, 0x85, 0x2e]), /across a MARK/],
    ['append to tuple', new Uint8Array([0x80, 2, 0x29, 0x4e, 0x61, 0x2e]), /not a list/],
    ['bad utf-8', new Uint8Array([0x80, 2, 0x8c, 1, 0xff, 0x2e]), /not valid UTF-8/],
    ['protocol 6', new Uint8Array([0x80, 6, 0x4e, 0x2e]), /unsupported pickle protocol 6/],
    ['not a zip', new Uint8Array([0x50, 0x4b, 3, 4, 0, 0, 0]), /not a readable zip archive/],
    ['zip without pickle', zipSync({ 'a/b': new Uint8Array(3) }, { level: 0 }), /no <archive>\/data\.pkl/],
    ['zip missing storage', zipFile({ dict: [['w', tensorW(s, 'zip', 0, [4], [1])]] }, []), /no zip entry 'archive\/data\/0'/],
    ['zip short storage', zipFile({ dict: [['w', tensorW({ ...s, numel: 5 }, 'zip', 0, [4], [1])]] }, [s]), /holds 16 bytes/],
    ['compressed zip', zipFile({ dict: [['w', tensorW(s, 'zip', 0, [4], [1])]] }, [s], {}, 6), /compressed/],
    ['bad byteorder', zipFile({ dict: [] }, [], { 'archive/byteorder': new TextEncoder().encode('middle') }), /byteorder/],
  ];
  for (const [name, bytes, re] of cases) {
    const t0 = performance.now();
    const msg = leftText(readTorchCheckpoint(bytes, `${name}.ckpt`));
    assert.match(msg, re, name);
    assert.ok(msg.startsWith(`${name}.ckpt`), `${name}: error names the file: ${msg}`);
    assert.ok(performance.now() - t0 < 500, `${name} took too long`);
  }
});

test('self-referencing structures do not hang', () => {
  // A dict that contains itself, and a list that contains itself: built with memo references.
  const selfDict = new Uint8Array([0x80, 2, 0x7d, 0x71, 0, 0x58, 1, 0, 0, 0, 0x61, 0x68, 0, 0x73, 0x2e]);
  const r = readTorchCheckpoint(concat([pickle(0x1950a86a20f9469cfc6cn), pickle(1001), pickle(SYS_INFO), selfDict, pickle({ list: [] })]));
  assert.match(leftText(r), /entry 'a' is not a state_dict/);
  // 2^40 references through repeated DUP + tuples stay cheap (no deep copies, no walks).
  const laughs = [0x80, 2, 0x5d];
  for (let i = 0; i < 40; i++) laughs.push(0x32, 0x86);
  laughs.push(0x2e);
  assert.ok(E.isLeft(readTorchCheckpoint(new Uint8Array(laughs))));
});

// ---------------------------------------------------------------------------------------------
// The pickle VM on Python's own output (protocol 4: FRAME, MEMOIZE, sets, bytes, big ints)

test('unpickle decodes what CPython pickle.dumps(protocol=4) writes', () => {
  // pickle.dumps({'ints': [0, 1, 255, 256, 65535, 65536, -1, -2**31, 2**31, 2**63, -2**70],
  //   'floats': [2.5, -0.0, inf], 'none': None, 'bools': (True, False), 'str': 'héllo',
  //   'bytes': b'\x00\xff', 'tuples': ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)), 'set': {1, 2},
  //   'fs': frozenset(['a']), 'big': 'x' * 256, 'shared': (lst, lst) with lst = [1]}, protocol=4)
  const hex =
    '80049502020000000000007d94288c04696e7473945d94284b004b014bff4d00014dffff4a000001004affffffff4a000000808a05' +
    '00000080008a090000000000000080008a090000000000000000c0658c06666c6f617473945d942847400400000000000047800000' +
    '0000000000477ff0000000000000658c046e6f6e65944e8c05626f6f6c7394888986948c03737472948c0668c3a96c6c6f948c0562' +
    '7974657394430200ff948c067475706c65739428294b0185944b014b0286944b014b024b038794284b014b024b034b04749474948c' +
    '03736574948f94284b014b02908c02667394288c01619491948c03626967945800010000' +
    '78'.repeat(256) +
    '948c06736861726564945d944b0161681a8694752e';
  const bytes = new Uint8Array(Buffer.from(hex, 'hex'));
  const hooks: PickleHooks<never> = {
    global: (m, n) => refuse(`no globals here (${m}.${n})`),
    call: () => refuse('no calls'),
    build: () => refuse('no build'),
    persistentLoad: () => refuse('no persistent ids'),
  };
  const { value, end } = right(unpickle(bytes, hooks, { where: 'py4' }));
  assert.equal(end, bytes.length);
  // Convert to plain JS for comparison.
  const plain = (v: PValue<never>): unknown => {
    if (v === null || typeof v !== 'object') return v;
    switch (v.tag) {
      case 'bytes':
        return [...v.bytes];
      case 'tuple':
      case 'list':
        return { [v.tag]: v.items.map(plain) };
      case 'dict':
        return Object.fromEntries([...v.entries].map(([k, x]) => [String(k), plain(x)]));
      case 'set':
        return { [v.frozen ? 'frozenset' : 'set']: [...v.items] };
      default:
        return v.tag;
    }
  };
  const shared = { list: [1] };
  assert.deepEqual(plain(value), {
    ints: { list: [0, 1, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31, 2n ** 63n, -(2n ** 70n)] },
    floats: { list: [2.5, -0, Infinity] },
    none: null,
    bools: { tuple: [true, false] },
    str: 'héllo',
    bytes: [0, 255],
    tuples: { tuple: [{ tuple: [] }, { tuple: [1] }, { tuple: [1, 2] }, { tuple: [1, 2, 3] }, { tuple: [1, 2, 3, 4] }] },
    set: { set: [1, 2] },
    fs: { frozenset: ['a'] },
    big: 'x'.repeat(256),
    shared: { tuple: [shared, shared] },
  });
  // The shared list is one object, referenced twice (memo), as in Python.
  const dict = value as Extract<PValue<never>, { tag: 'dict' }>;
  const pair = dict.entries.get('shared') as Extract<PValue<never>, { tag: 'tuple' }>;
  assert.equal(pair.items[0], pair.items[1]);
  // Every prefix is an error value, never an exception.
  for (let k = 0; k < bytes.length; k++) assert.ok(E.isLeft(unpickle(bytes.subarray(0, k), hooks)));
});

// ---------------------------------------------------------------------------------------------
// Fuzz: mutated fixtures always come back as a value, quickly

/** mulberry32: a small seeded PRNG. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

test('fuzz: 1,600 mutated checkpoints (zip and legacy) never throw and never hang', () => {
  const rand = prng(20240613);
  const int = (n: number) => Math.floor(rand() * n);
  const sources: Array<{ name: string; bytes: Uint8Array; hot: Array<[number, number]> }> = [];
  const addSource = (name: string, bytes: Uint8Array, hot: Array<[number, number]>) => sources.push({ name, bytes, hot });
  const legacy = fixture('v1_discriminator', 'model_legacy.ckpt');
  const zip = fixture('v1_discriminator', 'model.ckpt');
  // "Hot" ranges hold the structure (pickles, zip headers, central directory): most mutations go there.
  addSource('v1d legacy', legacy, [[0, 2200]]);
  addSource('v1d zip', zip, [[0, 1200], [zip.length - 1600, zip.length]]);
  addSource('mixed legacy', MIXED_LEGACY, [[0, MIXED_LEGACY.length]]);
  addSource('mixed zip', MIXED_ZIP, [[0, MIXED_ZIP.length]]);

  const position = (src: (typeof sources)[number]) => {
    if (rand() < 0.2) return int(src.bytes.length);
    const [a, b] = src.hot[int(src.hot.length)]!;
    return a + int(b - a);
  };
  const mutate = (src: (typeof sources)[number]): Uint8Array => {
    const b = src.bytes;
    switch (int(5)) {
      case 0: {
        const out = new Uint8Array(b);
        for (let j = 0, n = 1 + int(8); j < n; j++) out[position(src)] = int(256);
        return out;
      }
      case 1: {
        const out = new Uint8Array(b);
        for (let j = 0, n = 1 + int(4); j < n; j++) out[position(src)]! ^= 1 << int(8);
        return out;
      }
      case 2:
        return b.subarray(0, int(b.length));
      case 3: {
        const at = position(src);
        const ins = Array.from({ length: 1 + int(16) }, () => int(256));
        return concat([b.subarray(0, at), ins, b.subarray(at)]);
      }
      default: {
        const at = position(src);
        return concat([b.subarray(0, at), b.subarray(at + 1 + int(16))]);
      }
    }
  };

  const ITERATIONS = 1600;
  let lefts = 0;
  let worst = 0;
  const start = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    const src = sources[i % sources.length]!;
    const bytes = mutate(src);
    const t0 = performance.now();
    let r: Result<TorchCheckpoint>;
    try {
      r = readTorchCheckpoint(bytes, src.name);
    } catch (e) {
      assert.fail(`iteration ${i} (${src.name}) threw: ${String(e)}`);
    }
    worst = Math.max(worst, performance.now() - t0);
    if (E.isLeft(r)) {
      lefts++;
      assert.ok(r.left.length > 0 && r.left.every((e) => typeof e.message === 'string' && e.message.length > 0));
    } else {
      // Whatever reads must still be well-formed.
      const maps = r.right.kind === 'flat' ? [r.right.tensors] : [...r.right.nets.values()];
      for (const m of maps) for (const t of m.values()) assert.equal(t.data.length, numelOf(t.shape));
    }
  }
  const total = performance.now() - start;
  assert.ok(worst < 1000, `slowest read took ${worst.toFixed(0)} ms`);
  assert.ok(lefts > ITERATIONS * 0.3, `only ${lefts} of ${ITERATIONS} mutations were rejected`);
  assert.ok(lefts < ITERATIONS, 'some mutations (e.g. in tensor data) still read');
  assert.ok(total < 15_000, `fuzzing took ${total.toFixed(0)} ms`);
});
