# Peak convolution throughput of PyTorch on this machine (the same convolutions as bench/peak.ts).
import torch, time
for threads in (1, 2):
    torch.set_num_threads(threads)
    for k, c, hw in ((1, 512, 64), (3, 512, 32), (3, 256, 64)):
        x = torch.randn(1, c, hw, hw); conv = torch.nn.Conv2d(c, c, k, padding=k // 2, bias=False)
        with torch.no_grad():
            conv(x)
            t = time.perf_counter()
            for _ in range(5): conv(x)
            s = (time.perf_counter() - t) / 5
        print(f"torch:{threads} conv {k}x{k} {c}->{c} at {hw}x{hw}: {2*hw*hw*c*c*k*k/s/1e9:.1f} GFLOP/s")
