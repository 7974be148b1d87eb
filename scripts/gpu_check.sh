#!/usr/bin/env bash
# The GPU checks of docs/train.md ("On a GPU"), as one short script (a few minutes on one GPU):
#   1. the contract (every model/head/loss/sampler, align strategy and stage-2 method through the loop)
#      on real CUDA with AMP off and on (float16) and bf16;
#   2. NeuralCollapse / FeatureStats on CUDA against the CPU result;
#   3. host synchronisations over 20 training steps (torch.cuda.set_sync_debug_mode("warn"));
#   4. a two-rank torchrun with NC tracking and stage 2 when a second GPU exists.
# Prints one table; run it from the repository root: bash scripts/gpu_check.sh
# GPU_CHECK_DEVICE=cpu runs the same checks on the CPU (a dry run of the script itself; no sync count);
# GPU_CHECK_CONTRACT=0 skips check 1 (the longest: about 100 s on an H200).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'PYEOF'
import json, os, shutil, subprocess, sys, tempfile, threading, time, traceback, warnings
from collections import Counter
from pathlib import Path

import torch

rows = []
def record(check, ok, detail=""):
    rows.append((check, "ok" if ok else "FAIL", detail))

DEV = os.environ.get("GPU_CHECK_DEVICE", "cuda")
if DEV == "cuda" and not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible (GPU_CHECK_DEVICE=cpu runs a dry run on the CPU)")
gpu = torch.cuda.get_device_name(0) if DEV == "cuda" else "none (dry run on the CPU)"
sys.path.insert(0, os.getcwd())
from tests.train.test_contract import CASES, _config, _images  # noqa: E402
from nclab.train import loop  # noqa: E402

tmp = Path(tempfile.mkdtemp())
for amp in ("off", "on", "bf16") if os.environ.get("GPU_CHECK_CONTRACT", "1") != "0" else ():
    t0, failed = time.time(), []
    for name, overrides in CASES:
        cfg = _config(overrides, device=DEV)
        cfg.train.amp = amp
        real_load = loop.load_data
        if cfg.model.name != "mlp":
            c, side = (1, 28) if cfg.model.name == "cnn_small" else (3, 16)
            loop.load_data = lambda *_a, **_k: _images(c, side)
        try:
            run = loop.Trainer(cfg, tmp / f"{amp}-{name}").fit()
            last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
            if not 0 <= last["acc/all"] <= 1:
                failed.append(name)
        except Exception as err:  # noqa: BLE001
            failed.append(f"{name}: {type(err).__name__}: {str(err)[:80]}")
        finally:
            loop.load_data = real_load
    record(f"contract on {DEV}, amp={amp} ({len(CASES)} cases)", not failed,
           f"{time.time() - t0:.0f} s" + ("; " + " | ".join(failed[:3]) if failed else ""))

# NeuralCollapse / FeatureStats on CUDA equal the CPU result
from nclab.metrics import FeatureStats, nc_metrics  # noqa: E402
g = torch.Generator().manual_seed(0)
x, y = torch.randn(4000, 64, generator=g), torch.randint(0, 10, (4000,), generator=g)
w = torch.randn(10, 64, generator=g)
res = {}
for dev in ("cpu", DEV):
    st = FeatureStats(10, 64, device=dev)
    st.update(x.to(dev), y.to(dev), validate=False)
    res[dev] = nc_metrics(st, w.to(dev))
diff = max(abs(res["cpu"][k] - res[DEV][k]) / max(1e-12, abs(res["cpu"][k]))
           for k in ("nc1", "nc2_etf", "nc3") if isinstance(res["cpu"].get(k), float))
record(f"nc_metrics on {DEV} vs CPU (rel. diff)", diff < 1e-6, f"{diff:.1e}")
try:
    from nclab.metrics import NeuralCollapse
    m = NeuralCollapse(num_classes=10, dim=64).to(DEV)
    m.update(x.to(DEV), y.to(DEV))
    record(f"NeuralCollapse on {DEV}", True)
except Exception as err:  # noqa: BLE001
    record(f"NeuralCollapse on {DEV}", False, f"{type(err).__name__}: {str(err)[:80]}")

# synchronisations over training steps
cfg = _config(["train.nc_source=online", "align.strategies=[proj,slerp,reg]", "train.epochs=1"], device=DEV)
t = loop.Trainer(cfg, tmp / "sync")
t._train_epoch()  # warm-up (cuDNN, allocator)
first = t.global_step
sites = Counter()


def _site(message, category, filename, lineno, file=None, line=None):
    """Count a synchronisation warning by its innermost nclab frame (the line that made it)."""
    if "synchroniz" not in str(message):
        return
    stack = traceback.extract_stack()[:-1]
    ours = [f for f in stack if "/nclab/" in f.filename]
    if ours:
        sites[f"{Path(ours[-1].filename).name}:{ours[-1].lineno} {ours[-1].name}"] += 1
        return
    outer = [g for g in stack if not g.filename.endswith("warnings.py")][-3:]
    sites[f"{threading.current_thread().name}: " + " < ".join(
        f"{Path(g.filename).parent.name}/{Path(g.filename).name}:{g.lineno} {g.name}" for g in reversed(outer)
    )] += 1


with warnings.catch_warnings():
    warnings.simplefilter("always")
    warnings.showwarning = _site
    if DEV == "cuda":
        torch.cuda.set_sync_debug_mode("warn")
    t._train_epoch()
    if DEV == "cuda":
        torch.cuda.set_sync_debug_mode(0)
# allowed: the finiteness check and the progress bar's loss at every log_every-th step, and the
# finiteness check at the end of the epoch
n_log = sum(1 for s in range(first + 1, t.global_step + 1) if s % cfg.train.log_every == 0)
record(f"host syncs in one epoch of {t.steps_per_epoch} steps ({n_log} logged)",
       sum(sites.values()) <= 1 + 2 * n_log,
       f"{sum(sites.values())}: " + ", ".join(f"{k} x{v}" for k, v in sites.most_common()))
t.close()

if DEV == "cuda" and torch.cuda.device_count() >= 2:
    smoke = "configs/recipes/synthetic.yaml"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "nclab", "train", smoke, "train.epochs=2", "stage2.method=crt", "stage2.epochs=1",
                        "--run-dir", str(tmp / "ddp")], capture_output=True, text=True, timeout=240)
    record("torchrun 2 GPUs: NC tracking + stage 2", r.returncode == 0, r.stderr[-200:] if r.returncode else "")
else:
    record("torchrun 2 GPUs", True, "skipped: one GPU")

shutil.rmtree(tmp, ignore_errors=True)
print(f"\nGPU: {gpu}, torch {torch.__version__}\n")
print("| check | result | detail |\n|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} |")
sys.exit(0 if all(r[1] == "ok" for r in rows) else 1)
PYEOF
