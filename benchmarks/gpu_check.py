"""What to run the moment a GPU is lent: does nasflow's CUDA code work, and how fast is it?

    bash benchmarks/gpu_check.sh                      # on a GPU machine: checks + figures, at most ~8 min on an H100
    bash benchmarks/gpu_check.sh --out-dir "$OUT"     # the same, every file it writes under $OUT
    bash benchmarks/gpu_check.sh --device cpu --smoke --threads 1   # the same code at tiny sizes on the CPU (~1-3 min)

Checks (each in try/except, one line `PASS|FAIL|SKIP <name> <seconds> s <detail>` as it goes, each with its own
time budget, after which it is stopped and FAILs):

  bf16            nasflow.train.train of an NB201 network (C=8, N=2) for one epoch with precision=16: the result
                  says precision_used "bf16" and the training loss is finite.
  claim_two_jobs  two processes claim a device at once with nasflow.devices.claim_device(jobs_per_gpu=2) and hold
                  it 2 s: both get one, in different slots, never more than two on a GPU, neither waits.
  claim_one_waits the same with jobs_per_gpu=1 on one GPU: the second claim returns only after the first is released.
  resume_rng      a 2-epoch training stopped after epoch 1 (checkpoint) and resumed, vs an uninterrupted one with
                  the same seed: equal histories (train_loss to rel 1e-3 on CUDA, exactly on the CPU), and the
                  checkpoint's saved RNG states hold a "cuda" entry.
  packed          nasflow.train.train_packed of 4 NB201 archs vs nasflow.train.train of each alone (the archs'
                  seeds as nasflow.estimators.proxy builds them): final accuracies within 1.0 point on CUDA
                  (equal on the CPU); both wall times and their ratio.
  compiled        train(..., compile="reduce-overhead") (CUDA; "default" on the CPU) for 2 epochs vs eager: the
                  result says "compiled", the final train loss is within rel 5e-2 of eager's; each's second-epoch
                  train_seconds.
  gdas            nasflow.search.differentiable.run_search("gdas") for one epoch in the nb201 space: status ok,
                  finite losses and alphas.
  darts_v2_hvp    the same for "darts-v2", and one direct hessian_vector_product on the device: finite, and the
                  weights restored exactly.
  darts_supernet  a few training steps of RLNAS' DARTS-space supernet (nasflow.estimators.rlnas.train_supernet,
                  random labels; C=16, 8 layers, 32 px on CUDA): finite loss.

Figures (afterwards, each a subprocess of an existing benchmark script, or of this one, with a timeout; a timeout
or a failure is a FAIL line, not a crash; logs in <out-dir>/gpu_check_<figure>.log):

  a_throughput    benchmarks/train_throughput.py --sizes bpe1,bpe2,full --images 20000 --repeats 2 --workers 2:
                  training images/s per size (ours channels_last, and the best plain DataLoader loop).
  b_bpe1_packing  benchmarks/packing.py --data cifar10 --images 50000 --epochs 1 --archs 16 --packs 1,4,8,16
                  --jobs 1,2,4 --skip compiled: seconds per arch per epoch amortised at the best pack size (and
                  the best job count); BPE1 trains 10 epochs, so 10 x that vs the goal <= 6 s and the BPE
                  paper's 306 s. It runs last (its JSON: <out-dir>/gpu_check_packing.json), with all the time
                  left; if that runs out, the rows it finished are read from its log.
  c_gdas_epoch    benchmarks/search_cost.py --C 16 --N 5 --image-size 32 --images 25000 --epochs 2 --methods gdas:
                  one GDAS epoch at NB201's search size, x240 epochs vs NB201's 31,610 s and the goal 45 min.
  d_nb201_train   an NB201 network (the heaviest cell, all nor_conv_3x3; C=16, N=5, 32 px, batch 256, NB201's
                  optimiser, fp32) trained 2 epochs on the 50,000 CIFAR-10 training images by nasflow.train.train:
                  the second epoch's seconds (evaluation on the 10,000 test images included) x200 vs the goal 10 min.

Time budget: `--budget` seconds in all (default 470: under 8 minutes on one H100 with the default sizes). Each
figure's timeout is capped by what is left of it; a figure with no time left FAILs as "not run". Missed goals
are reported, not failed.

--smoke (needed with --device cpu): the same checks and figures at tiny sizes, so the whole script runs on a CPU in
a minute or two; what only makes sense on CUDA (bf16, the GPU slot locks of claim_device) reports SKIP with the
reason, after running what the CPU can run of it (precision=16 trains fp32 there; the slot locks are exercised on
a fake GPU through nasflow.devices.acquire_lock, the code claim_device uses on CUDA). The figures' numbers are then
meaningless except as a test that the pipeline works.

Writes <out-dir>/gpu_check.json (default benchmarks/out/): every check and figure (status, seconds, detail, the
exception's one-line message and traceback on FAIL, the numbers), the device (nasflow.devices.describe), torch's
version and the total seconds; it is rewritten after each item, so a killed run keeps what it did. Prints a
summary table at the end. Exit status: 0 when nothing FAILed, 1 otherwise, 2 when there is no CUDA device.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

START = time.perf_counter()  # the budget counts from here: importing torch on a fresh machine takes a while

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from nasflow.data import DeviceLoader, load_dataset  # noqa: E402
from nasflow.devices import describe  # noqa: E402
from nasflow.estimators.proxy import arch_seed  # noqa: E402
from nasflow.registry import build_network, get_space  # noqa: E402
from nasflow.train import TrainConfig, train, train_packed  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cifar10.npz"
NO_CUDA = ("error: gpu_check: no CUDA device (torch.cuda.is_available() is False); use --device cpu --smoke for "
           "a CPU run of the same code")

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
HEAVIEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"

# reference figures
BPE1_EPOCHS, BPE1_GOAL_S, BPE1_PAPER_S = 10, 6.0, 306.0           # seconds per arch for BPE1 (10 epochs)
GDAS_EPOCHS, GDAS_NB201_S, GDAS_GOAL_S = 240, 31_610.0, 45 * 60.0  # ADL's GDAS.config epochs; NB201's table
NB201_EPOCHS, NB201_GOAL_S = 200, 10 * 60.0


@dataclasses.dataclass(frozen=True)
class Sizes:
    images: int           # training (and evaluation) images of the checks' subset
    image_size: int
    batch_size: int
    C: int                # NB201 network of the checks (bf16, resume, packed, compiled)
    N: int
    search_C: int         # the nb201 search network of gdas / darts_v2_hvp
    search_N: int
    search_images: int    # images per half
    search_batch: int
    search_px: int
    supernet_C: int       # the DARTS supernet
    supernet_layers: int
    supernet_px: int
    supernet_images: int
    supernet_batch: int
    hold: float           # seconds each claim is held
    check_budget: float   # seconds per check (compiled: 2x)
    compile_N: int        # cells per stage of the compiled check's network (compiling is slow on a CPU)
    # figures: (arguments of the script, timeout in seconds)
    throughput: tuple
    packing: tuple
    search_cost: tuple
    nb201: tuple          # (C, N, px, batch, images or None = all 50,000, timeout)


CUDA_SIZES = Sizes(
    images=5000, image_size=32, batch_size=128, C=8, N=2,
    search_C=8, search_N=2, search_images=2048, search_batch=64, search_px=32,
    supernet_C=16, supernet_layers=8, supernet_px=32, supernet_images=512, supernet_batch=64,
    hold=2.0, check_budget=90.0, compile_N=2,
    throughput=(["--sizes", "bpe1,bpe2,full", "--images", "20000", "--repeats", "2", "--workers", "2"], 150),
    packing=(["--data", "cifar10", "--images", "50000", "--epochs", "1", "--archs", "16", "--packs", "1,4,8,16",
              "--jobs", "1,2,4", "--skip", "compiled"], 300),
    search_cost=(["--C", "16", "--N", "5", "--image-size", "32", "--images", "25000", "--epochs", "2",
                  "--methods", "gdas"], 150),
    nb201=(16, 5, 32, 256, None, 120),
)
SMOKE_SIZES = Sizes(
    images=256, image_size=16, batch_size=64, C=8, N=2,
    search_C=4, search_N=1, search_images=128, search_batch=32, search_px=16,
    supernet_C=4, supernet_layers=5, supernet_px=16, supernet_images=128, supernet_batch=32,
    hold=1.0, check_budget=120.0, compile_N=1,
    throughput=(["--sizes", "bpe1", "--images", "256", "--repeats", "1", "--workers", "0"], 180),
    packing=(["--data", "cifar10", "--images", "256", "--epochs", "1", "--archs", "2", "--packs", "1,2",
              "--jobs", "1,2", "--skip", "compiled"], 180),
    search_cost=(["--C", "4", "--N", "1", "--image-size", "16", "--images", "128", "--batch-size", "32",
                  "--epochs", "2", "--methods", "gdas"], 180),
    nb201=(4, 1, 16, 64, 256, 180),
)


class Skip(Exception):
    """The check does not apply here (the message says why, and what ran of it)."""


class CheckFailed(AssertionError):
    pass


class OverBudget(Exception):
    pass


def require(ok: bool, message: str) -> None:
    if not ok:
        raise CheckFailed(message)


def finite(x) -> bool:
    if isinstance(x, (list, tuple)):
        return all(finite(v) for v in x)
    if torch.is_tensor(x):
        return bool(torch.isfinite(x).all())
    return isinstance(x, (int, float)) and math.isfinite(x)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise OverBudget in the main thread once `seconds` have passed (checked between Python bytecodes)."""
    def handler(signum, frame):
        raise OverBudget(f"over its {seconds:.0f} s budget")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------------------------------------ the run

class Run:
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.sizes = SMOKE_SIZES if args.smoke else CUDA_SIZES
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.out_dir = Path(args.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.json_path = self.out_dir / "gpu_check.json"
        self.t0 = START
        self.deadline = self.t0 + args.budget
        self._splits: dict = {}
        self.scratch = Path(tempfile.mkdtemp(prefix="nasflow-gpu-check-"))
        self.report = {
            "device": describe(self.device), "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "machine": platform.node(), "smoke": self.smoke,
            "torch_threads": torch.get_num_threads(), "budget_seconds": args.budget,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "data": str(DATA) if DATA.is_file() else "digits",
            "checks": {}, "figures": {}, "total_seconds": None,
        }

    # -------------------------------------------------------------------------------------- bookkeeping

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def save(self) -> None:
        self.report["total_seconds"] = time.perf_counter() - self.t0
        tmp = self.json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.report, indent=1, default=str) + "\n")
        os.replace(tmp, self.json_path)

    def record(self, section: str, name: str, status: str, seconds: float, detail: str, **extra) -> None:
        self.report[section][name] = {"status": status, "seconds": round(seconds, 2), "detail": detail, **extra}
        print(f"{status} {name} {seconds:.1f} s {detail}", flush=True)
        self.save()

    def check(self, name: str, fn, budget: float | None = None) -> None:
        budget = self.sizes.check_budget if budget is None else budget
        t0 = time.perf_counter()
        extra: dict = {}
        try:
            with time_limit(budget):
                detail, data = fn()
            status = "PASS"
            extra["data"] = data
        except Skip as e:
            status, detail = "SKIP", str(e)
        except Exception as e:  # noqa: BLE001 - every failure is a FAIL line, never a crash
            status, detail = "FAIL", one_line(e)
            extra.update(error=one_line(e), traceback=traceback.format_exc(limit=8))
        finally:
            if self.cuda:
                with contextlib.suppress(Exception):
                    torch.cuda.synchronize(self.device)
                    torch.cuda.empty_cache()
        self.record("checks", name, status, time.perf_counter() - t0, detail, **extra)

    def sync(self) -> float:
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    # --------------------------------------------------------------------------------------------- data

    def splits(self, n: int, eval_split: str = "test"):
        key = (n, eval_split)
        if key not in self._splits:
            if DATA.is_file():
                self._splits[key] = load_dataset("npz", path=str(DATA), subset=n, eval_split=eval_split)
            else:
                self._splits[key] = load_dataset("digits", subset=n, eval_split=eval_split)
        return self._splits[key]

    def nb201(self, arch: str, num_classes: int, seed: int = 0, depth: int | None = None):
        """(the arch's seed, its network built right after seeding torch with it), as nasflow.estimators.proxy."""
        s = arch_seed(seed, arch)
        torch.manual_seed(s)
        return s, build_network(get_space("nb201"), arch, channels=self.sizes.C,
                                depth=self.sizes.N if depth is None else depth, num_classes=num_classes)

    def cfg(self, **kw) -> TrainConfig:
        base = dict(epochs=1, batch_size=self.sizes.batch_size, lr=0.05, momentum=0.9, nesterov=True,
                    weight_decay=5e-4, grad_clip=5.0, image_size=self.sizes.image_size)
        return TrainConfig(**{**base, **kw})

    # ------------------------------------------------------------------------------------------- checks

    def check_bf16(self):
        splits = self.splits(self.sizes.images)
        s, model = self.nb201(ARCH, splits.num_classes)
        r = train(model, splits, self.cfg(precision=16), seed=s, device=self.device, progress=False)
        loss = r["history"][-1]["train_loss"]
        require(finite(loss), f"train_loss {loss} is not finite")
        detail = (f"precision_used {r['precision_used']}, train_loss {loss:.4f}, eval_acc {r['final_acc']:.2f}% "
                  f"({len(splits.x_train)} images, {r['seconds']:.1f} s)")
        if not self.cuda:
            require(r["precision_used"] == "fp32", f"precision_used {r['precision_used']!r} on the CPU")
            raise Skip(f"bf16 autocast is CUDA-only (ran precision=16 on the CPU: {detail}, as documented)")
        require(r["precision_used"] == "bf16", f"precision_used {r['precision_used']!r}, not 'bf16'")
        return detail, {"precision_used": r["precision_used"], "train_loss": loss, "final_acc": r["final_acc"]}

    def _claims(self, mode: str, k: int, env: dict | None = None) -> tuple[list[dict], Path]:
        """Two processes that claim at once (a file barrier after their start-up), hold `hold` s, release.

        mode "claim": nasflow.devices.claim_device(device, jobs_per_gpu=k); mode "lock": acquire_lock on one
        fake GPU with k slots (the lock logic claim_device runs on CUDA). Returns their reports."""
        lock_dir = Path(tempfile.mkdtemp(prefix="locks-", dir=self.scratch))
        barrier = Path(tempfile.mkdtemp(prefix="barrier-", dir=self.scratch))
        cmd = [sys.executable, "-c", CLAIM_CHILD, str(ROOT), mode, self.device.type, str(k), str(lock_dir),
               str(self.sizes.hold), str(barrier)]
        procs = []
        try:
            for j in range(2):
                procs.append(subprocess.Popen(cmd + [str(j)], cwd=ROOT, env={**os.environ, **(env or {})},
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            deadline = time.monotonic() + 120
            while not all((barrier / f"ready{j}").exists() for j in range(2)):
                if any(p.poll() is not None for p in procs):
                    break
                require(time.monotonic() < deadline, "the claiming processes did not start within 120 s")
                time.sleep(0.02)
            (barrier / "go").touch()
            reports = []
            for p in procs:
                out, err = p.communicate(timeout=60 + 4 * self.sizes.hold)
                if p.returncode != 0:
                    last = err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}"
                    raise CheckFailed(f"a claiming process failed: {last}")
                reports.append(json.loads(out.strip().splitlines()[-1]))
            return reports, lock_dir
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()

    @staticmethod
    def _overlap(reports) -> bool:
        return max(r["t_acquired"] for r in reports) < min(r["t_hold_end"] for r in reports)

    def check_claim_two(self):
        hold = self.sizes.hold
        if not self.cuda:
            cpu, _ = self._claims("claim", 2)
            require(all(r["device"] == "cpu" for r in cpu), f"claim_device('cpu') gave {[r['device'] for r in cpu]}")
            require(self._overlap(cpu), "the two cpu claims did not run at once")
            fake, _ = self._claims("lock", 2)
            slots = [r["locks"] for r in fake]
            require(all(len(s) == 1 for s in slots) and slots[0] != slots[1], f"slot locks held: {slots}")
            require(self._overlap(fake), "the two slot claims on one fake GPU did not overlap (one waited)")
            waits = [r["t_acquired"] - r["t_go"] for r in fake]
            raise Skip(f"no CUDA: claim_device('cpu', jobs_per_gpu=2) gave both jobs cpu at once (no lock); the "
                       f"2-slot lock logic on a fake GPU: slots {slots[0][0]} / {slots[1][0]}, both at once "
                       f"(waits {max(waits):.2f} s); claim_device's CUDA path (GPU-UUID locks, set_device) not run")
        reports, _ = self._claims("claim", 2)
        devices = [r["device"] for r in reports]
        locks = [tuple(r["locks"]) for r in reports]
        require(all(d.startswith("cuda") for d in devices), f"devices {devices}")
        require(all(len(lk) == 1 for lk in locks) and locks[0] != locks[1], f"slot locks held: {locks}")
        per_gpu = {d: devices.count(d) for d in devices}
        require(max(per_gpu.values()) <= 2, f"more than 2 jobs on one GPU: {per_gpu}")
        require(all(r["current_device"] == int(r["device"].split(":")[1]) for r in reports),
                "torch.cuda.current_device() is not the claimed GPU")
        waits = [r["t_acquired"] - r["t_go"] for r in reports]
        require(self._overlap(reports) and max(waits) < hold, f"one job waited ({max(waits):.2f} s) for a free slot")
        detail = (f"{devices[0]} [{locks[0][0]}] and {devices[1]} [{locks[1][0]}], held at once "
                  f"(claims took {max(waits):.2f} s; {torch.cuda.device_count()} GPU(s))")
        return detail, {"reports": reports}

    def check_claim_one(self):
        hold = self.sizes.hold
        if not self.cuda:
            reports, _ = self._claims("lock", 1)
            what = "the 1-slot lock logic on a fake GPU (acquire_lock, as claim_device on CUDA)"
        else:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            first = visible.split(",")[0].strip() if visible else "0"
            reports, _ = self._claims("claim", 1, env={"CUDA_VISIBLE_DEVICES": first})
            what = f"claim_device('cuda', jobs_per_gpu=1) on one GPU (CUDA_VISIBLE_DEVICES={first})"
        a, b = sorted(reports, key=lambda r: r["t_acquired"])
        waited = b["t_acquired"] - b["t_go"]
        require(b["t_acquired"] >= a["t_hold_end"] - 0.01,
                f"{what}: the second claim returned {a['t_hold_end'] - b['t_acquired']:.2f} s before the first "
                "was released")
        require(waited >= 0.5 * hold, f"{what}: the second claim waited only {waited:.2f} s")
        detail = (f"the second claim returned {b['t_acquired'] - a['t_hold_end']:.2f} s after the first's release "
                  f"(waited {waited:.2f} s of the {hold:g} s hold)")
        if not self.cuda:
            raise Skip(f"no CUDA: claim_device('cpu') takes no lock; {what}: {detail}")
        return detail, {"reports": reports}

    def check_resume(self):
        splits = self.splits(self.sizes.images)
        cfg = self.cfg(epochs=2)
        ck = self.scratch / "resume.pt"
        ck.unlink(missing_ok=True)
        s, m = self.nb201(ARCH, splits.num_classes)
        first = train(m, splits, cfg, seed=s, device=self.device, checkpoint=ck, stop_after_epochs=1, progress=False)
        require(first["epochs"] == 1, f"stop_after_epochs=1 ran {first['epochs']} epochs")
        state = torch.load(ck, map_location="cpu", weights_only=True)
        rng_keys = sorted(state["rng"])
        s, m = self.nb201(ARCH, splits.num_classes)
        resumed = train(m, splits, cfg, seed=s, device=self.device, checkpoint=ck, progress=False)
        s, m = self.nb201(ARCH, splits.num_classes)
        whole = train(m, splits, cfg, seed=s, device=self.device, progress=False)
        require(resumed["resumed_from"] == 1, f"resumed_from {resumed['resumed_from']!r}, not 1")
        require(len(resumed["history"]) == len(whole["history"]) == 2,
                f"{len(resumed['history'])} and {len(whole['history'])} epochs")
        keys = ("train_loss", "train_acc", "eval_loss", "eval_acc")
        worst = max(rel_diff(h[k], g[k]) for h, g in zip(resumed["history"], whole["history"]) for k in keys
                    if h[k] is not None)
        loss_rel = max(rel_diff(h["train_loss"], g["train_loss"]) for h, g in zip(resumed["history"], whole["history"]))
        if self.cuda:
            require(loss_rel <= 1e-3, f"train_loss differs by rel {loss_rel:.2e} (> 1e-3) from the uninterrupted run")
            require("cuda" in rng_keys, f"the checkpoint's rng has {rng_keys}, no 'cuda' entry")
        else:
            same = all(h[k] == g[k] for h, g in zip(resumed["history"], whole["history"]) for k in keys)
            require(same, f"the resumed history differs from the uninterrupted one (max rel {worst:.2e})")
        detail = (f"resumed after epoch 1: train_loss rel diff {loss_rel:.1e}, any metric {worst:.1e}; "
                  f"checkpoint rng {'/'.join(rng_keys)}")
        if not self.cuda:
            detail += " (no 'cuda' entry without CUDA: that part is for a GPU)"
        return detail, {"rng_keys": rng_keys, "train_loss_rel": loss_rel, "max_rel": worst,
                        "resumed": [h["train_loss"] for h in resumed["history"]],
                        "whole": [h["train_loss"] for h in whole["history"]]}

    def check_packed(self):
        splits = self.splits(self.sizes.images)
        archs = get_space("nb201").sample(4, seed=0)
        cfg = self.cfg()
        t0 = self.sync()
        alone = []
        for arch in archs:
            s, m = self.nb201(arch, splits.num_classes)
            alone.append(train(m, splits, cfg, seed=s, device=self.device, progress=False))
        t_alone = self.sync() - t0
        seeds, models = zip(*(self.nb201(arch, splits.num_classes) for arch in archs))
        t0 = self.sync()
        packed = train_packed(list(models), splits, cfg, seeds=list(seeds), device=self.device, progress=False)
        t_packed = self.sync() - t0
        a = [r["final_acc"] for r in alone]
        p = [r["final_acc"] for r in packed]
        diff = max(abs(x - y) for x, y in zip(a, p))
        if self.cuda:
            require(diff <= 1.0, f"final accuracies differ by up to {diff:.2f} points (> 1.0): alone {a}, packed {p}")
        else:
            require(a == p, f"final accuracies differ on the CPU: alone {a}, packed {p}")
        detail = (f"4 archs x 1 epoch: one by one {t_alone:.1f} s, packed {t_packed:.1f} s "
                  f"({t_alone / t_packed:.2f}x); max |acc diff| {diff:.2f} points")
        return detail, {"archs": archs, "alone_acc": a, "packed_acc": p, "alone_seconds": t_alone,
                        "packed_seconds": t_packed, "ratio": t_alone / t_packed}

    def check_compiled(self):
        splits = self.splits(self.sizes.images)
        cfg = self.cfg(epochs=2)
        mode = "reduce-overhead" if self.cuda else "default"
        N = self.sizes.compile_N
        s, m = self.nb201(ARCH, splits.num_classes, depth=N)
        eager = train(m, splits, cfg, seed=s, device=self.device, progress=False)
        s, m = self.nb201(ARCH, splits.num_classes, depth=N)
        try:
            comp = train(m, splits, cfg, seed=s, device=self.device, progress=False, compile=mode)
        finally:
            with contextlib.suppress(Exception):
                torch._dynamo.reset()
        require(comp.get("compiled") == mode,
                f"torch.compile({mode!r}) fell back to eager (result compiled={comp.get('compiled')!r})")
        le, lc = eager["history"][-1]["train_loss"], comp["history"][-1]["train_loss"]
        require(finite(lc) and rel_diff(le, lc) <= 5e-2, f"final train_loss compiled {lc:.4f} vs eager {le:.4f}")
        te, tc = eager["history"][1]["train_seconds"], comp["history"][1]["train_seconds"]
        detail = (f"{mode}, C={self.sizes.C} N={N}: second-epoch train_seconds eager {te:.2f} s, compiled {tc:.2f} s ({te / tc:.2f}x; "
                  f"first compiled epoch {comp['history'][0]['train_seconds']:.1f} s); final train_loss "
                  f"{lc:.4f} vs eager {le:.4f} (rel {rel_diff(le, lc):.1e})")
        return detail, {"mode": mode, "eager_epoch2_train_seconds": te, "compiled_epoch2_train_seconds": tc,
                        "compiled_epoch1_train_seconds": comp["history"][0]["train_seconds"],
                        "eager_train_loss": le, "compiled_train_loss": lc}

    def _search(self, method: str, precision: int = 32):
        from nasflow.search.differentiable import run_search

        z = self.sizes
        splits = self.splits(z.search_images, eval_split="valid")
        r = run_search(method, splits, space="nb201", C=z.search_C, depth=z.search_N, epochs=1,
                       batch_size=z.search_batch, w_lr=0.025, w_lr_min=0.001, w_momentum=0.9, w_nesterov=True,
                       w_wd=5e-4, grad_clip=5.0, a_lr=3e-4, a_betas=(0.5, 0.999), a_wd=1e-3, tau_max=10.0,
                       tau_min=0.1, seed=0, device=self.device, progress=False, image_size=z.search_px,
                       precision=precision)
        require(r["status"] == "ok", f"status {r['status']!r} (diverged in epoch {r.get('diverged_epoch')})")
        h = r["history"][-1]
        values = {k: h[k] for k in ("train_loss", "arch_loss", "valid_loss")}
        require(all(finite(v) for v in values.values()), f"non-finite values {values}")
        require(r["alphas"] is not None and finite(torch.tensor(r["alphas"])), "non-finite alphas")
        require(r["best"] is not None, "no arch derived")
        detail = (f"C={z.search_C} N={z.search_N} {z.search_px} px, {len(splits.x_train)}+{len(splits.x_eval)} "
                  f"images: train_loss {h['train_loss']:.3f}, arch_loss {h['arch_loss']:.3f}, valid_acc "
                  f"{h['valid_acc']:.1f}%, {h['seconds']:.1f} s/epoch")
        return detail, {"best": r["best"], "epoch_seconds": h["seconds"], **values}

    def check_gdas(self):
        detail, data = self._search("gdas")
        # the search's loop is the training engine's: bf16 autocast reaches its weight and alpha steps too
        detail16, data16 = self._search("gdas", precision=16)
        data["bf16"] = data16
        return f"{detail}; bf16: {detail16}", data

    def check_darts_v2_hvp(self):
        from nasflow.models.nb201_search import NB201SearchNetwork
        from nasflow.search.differentiable import hessian_vector_product

        detail, data = self._search("darts-v2")
        z = self.sizes
        splits = self.splits(z.search_images, eval_split="valid")
        torch.manual_seed(0)
        model = NB201SearchNetwork(z.search_C, z.search_N, splits.num_classes, mode="darts", seed=0)
        model.to(self.device).to(memory_format=torch.channels_last)
        loader = DeviceLoader(splits.x_train, splits.y_train, batch_size=z.search_batch, device=self.device,
                              image_size=z.search_px, train=True, mean=splits.mean, std=splits.std, seed=0)
        x, y = next(iter(loader))
        model.train()
        weights = model.weights()
        vector = torch.autograd.grad(F.cross_entropy(model(x), y), weights, allow_unused=True)
        before = [p.detach().clone() for p in weights]
        hvp = hessian_vector_product(model, vector, x, y)
        require(all(finite(h) for h in hvp), "hessian_vector_product returned non-finite values")
        require(all(torch.equal(p, q) for p, q in zip(weights, before)), "the weights were not restored exactly")
        norm = float(torch.cat([h.reshape(-1) for h in hvp]).norm())
        data.update(hvp_norm=norm, hvp_device=str(hvp[0].device))
        return f"{detail}; hessian_vector_product on {hvp[0].device}: finite, norm {norm:.3g}", data

    def check_darts_supernet(self):
        from nasflow.estimators.rlnas import train_supernet

        z = self.sizes
        splits = self.splits(z.supernet_images)
        setting = {"channels": z.supernet_C, "layers": z.supernet_layers, "image_size": z.supernet_px,
                   "epochs": 1, "batch_size": z.supernet_batch, "lr": 0.025, "lr_min": 0.001, "momentum": 0.9,
                   "nesterov": False, "weight_decay": 3e-4, "grad_clip": 5.0, "precision": 32}
        work = self.scratch / "supernet"
        out = train_supernet(setting, splits, labels="random", seed=0, device=self.device, work_dir=work,
                             progress=False, space="darts")
        h = out["result"]["history"][-1]
        require(out["result"]["status"] == "ok" and finite(h["train_loss"]), f"train_loss {h['train_loss']}")
        steps = math.ceil(len(splits.x_train) / z.supernet_batch)
        detail = (f"C={z.supernet_C}, {z.supernet_layers} layers, {z.supernet_px} px: {steps} steps on random labels, "
                  f"train_loss {h['train_loss']:.3f}, {h['train_seconds']:.1f} s")
        return detail, {"train_loss": h["train_loss"], "steps": steps, "train_seconds": h["train_seconds"]}

    # ------------------------------------------------------------------------------------------ figures

    def _subprocess_env(self) -> dict:
        env = {**os.environ, "NASFLOW_LOCK_DIR": str(self.scratch / "figure-locks"), "PYTHONUNBUFFERED": "1"}
        if self.args.threads:
            env.update(OMP_NUM_THREADS=str(self.args.threads), MKL_NUM_THREADS=str(self.args.threads))
        return env

    def _run_script(self, name: str, cmd: list[str], timeout: float, cwd: Path = ROOT) -> tuple[int | None, str]:
        """Run `cmd` (its own process group) with its output in <out-dir>/gpu_check_<name>.log: (exit code or None
        on a timeout, the log's text)."""
        log = self.out_dir / f"gpu_check_{name}.log"
        with open(log, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            p = subprocess.Popen(cmd, cwd=cwd, env=self._subprocess_env(), stdout=f, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                rc = None
            finally:
                if p.poll() is None or rc is None:  # its children (packing's jobs) go with it
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        return rc, log.read_text(errors="replace")

    def figure(self, name: str, fn, timeout: float) -> None:
        t0 = time.perf_counter()
        timeout = min(timeout, self.left() - 5)
        if timeout < 15:
            self.record("figures", name, "FAIL", 0.0, f"not run: the {self.args.budget:g} s budget is spent")
            return
        try:
            status, detail, data = fn(timeout)
            extra = {"data": data}
        except Exception as e:  # noqa: BLE001
            status, detail = "FAIL", one_line(e)
            extra = {"error": one_line(e), "traceback": traceback.format_exc(limit=8)}
        self.record("figures", name, status, time.perf_counter() - t0, detail, **extra)

    def _failed(self, name: str, rc, log: str, timeout: float) -> str:
        if rc is None:
            return f"timed out after {timeout:.0f} s (log: {self.out_dir / f'gpu_check_{name}.log'})"
        lines = [ln for ln in log.strip().splitlines() if ln.strip()]
        return f"exit {rc}: {lines[-1] if lines else 'no output'}"

    def figure_throughput(self, timeout):
        args, _ = self.sizes.throughput
        out = self.out_dir / "gpu_check_throughput.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--device", self.device.type,
               *args, "--out", str(out)]
        if not DATA.is_file():
            cmd += ["--data", "digits"]
        rc, log = self._run_script("a_throughput", cmd, timeout)
        if rc != 0 or not out.is_file():
            return "FAIL", self._failed("a_throughput", rc, log, timeout), None
        rows = json.loads(out.read_text())["rows"]
        parts, data = [], {}
        for r in rows:
            ours = r["variants"]["ours_cl"]["best"]
            plain = max(r["plain_best"]["cl"]["best"], r["plain_best"]["nchw"]["best"])
            parts.append(f"{r['setting']} {ours:,.0f} img/s (plain {plain:,.0f})")
            data[r["setting"]] = {"ours_cl": ours, "ours_nchw": r["variants"]["ours_nchw"]["best"],
                                  "plain_best": plain}
        return "PASS", "ours channels_last, best epoch: " + "; ".join(parts), {"images_per_s": data, "json": str(out)}

    def figure_packing(self, timeout):
        args, _ = self.sizes.packing
        produced = self.out_dir / "gpu_check_packing.json"
        if not DATA.is_file():
            args = ["digits" if a == "cifar10" else a for a in args]
        cmd = [sys.executable, str(ROOT / "benchmarks" / "packing.py"), "--device", self.device.type,
               "--path", str(DATA), "--out", str(produced), *args]
        if self.args.threads:
            cmd += ["--threads", str(self.args.threads)]
        rc, log = self._run_script("b_bpe1_packing", cmd, timeout, cwd=ROOT)
        epochs = int(args[args.index("--epochs") + 1])
        if rc == 0 and produced.is_file():
            result = json.loads(produced.read_text())
            packs = {r["pack"]: r["seconds_per_arch"] for r in result.get("packed", [])}
            jobs = {r["jobs"]: r["seconds_per_arch"] for r in result.get("jobs", [])}
            partial = ""
        else:  # what it finished, from its progress lines
            packs = {int(k): float(v) for k, v in re.findall(r"^\s*pack (\d+): ([\d.]+) s per arch", log, re.M)}
            jobs = {int(k): float(v) for k, v in re.findall(r"^\s*(\d+) jobs: ([\d.]+) s per arch", log, re.M)}
            if not packs:
                return "FAIL", self._failed("b_bpe1_packing", rc, log, timeout), None
            partial = f" [PARTIAL: {self._failed('b_bpe1_packing', rc, log, timeout)}]"
        best_pack = min(packs, key=packs.get)
        per_epoch = packs[best_pack] / epochs
        bpe1 = BPE1_EPOCHS * per_epoch
        detail = (f"s per arch-epoch by pack {', '.join(f'{k}: {v / epochs:.2f}' for k, v in packs.items())}"
                  + (f"; by jobs {', '.join(f'{k}: {v / epochs:.2f}' for k, v in jobs.items())}" if jobs else "")
                  + f"; BPE1 (10 epochs) at pack {best_pack}: {bpe1:.1f} s per arch, goal <= {BPE1_GOAL_S:g} s "
                  f"({'met' if bpe1 <= BPE1_GOAL_S else 'missed'}), BPE paper {BPE1_PAPER_S:g} s "
                  f"({BPE1_PAPER_S / bpe1:.0f}x faster)")
        data = {"seconds_per_arch_by_pack": packs, "seconds_per_arch_by_jobs": jobs, "epochs": epochs,
                "best_pack": best_pack, "bpe1_seconds_per_arch": bpe1, "goal_seconds": BPE1_GOAL_S,
                "paper_seconds": BPE1_PAPER_S}
        if jobs:
            best_jobs = min(jobs, key=jobs.get)
            data.update(best_jobs=best_jobs, bpe1_seconds_per_arch_jobs=BPE1_EPOCHS * jobs[best_jobs] / epochs)
            detail += f"; at {best_jobs} jobs: {data['bpe1_seconds_per_arch_jobs']:.1f} s"
        return ("PASS" if not partial else "FAIL"), detail + partial, data

    def figure_search_cost(self, timeout):
        args, _ = self.sizes.search_cost
        out = self.out_dir / "gpu_check_search_cost.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, str(ROOT / "benchmarks" / "search_cost.py"), "--device", self.device.type, *args,
               "--data", str(DATA) if DATA.is_file() else "digits", "--out", str(out)]
        if self.args.threads:
            cmd += ["--threads", str(self.args.threads)]
        rc, log = self._run_script("c_gdas_epoch", cmd, timeout)
        if rc != 0 or not out.is_file():
            return "FAIL", self._failed("c_gdas_epoch", rc, log, timeout), None
        result = json.loads(out.read_text())
        row = next(r for r in result["rows"] if r["method"] == "gdas")
        total = GDAS_EPOCHS * row["epoch_seconds"]
        detail = (f"C={result['C']} N={result['depth']} {result['image_size']} px, {result['images_per_half']} "
                  f"images per half: {row['epoch_seconds']:.1f} s/epoch, x{GDAS_EPOCHS} = {total:,.0f} s "
                  f"({total / 60:.1f} min) vs NB201 {GDAS_NB201_S:,.0f} s ({GDAS_NB201_S / total:.1f}x), goal "
                  f"{GDAS_GOAL_S / 60:.0f} min ({'met' if total <= GDAS_GOAL_S else 'missed'})")
        return "PASS", detail, {"epoch_seconds": row["epoch_seconds"], "extrapolated_seconds": total,
                                "nb201_seconds": GDAS_NB201_S, "goal_seconds": GDAS_GOAL_S, "json": str(out)}

    def figure_nb201(self, timeout):
        C, N, px, batch, images, _ = self.sizes.nb201
        cmd = [sys.executable, str(Path(__file__).resolve()), "--device", self.device.type,
               "--nb201-epoch", f"{C},{N},{px},{batch},{images or 0}"]
        if self.args.threads:
            cmd += ["--threads", str(self.args.threads)]
        rc, log = self._run_script("d_nb201_train", cmd, timeout)
        lines = [ln for ln in log.splitlines() if ln.startswith("NB201_EPOCH ")]
        if rc != 0 or not lines:
            return "FAIL", self._failed("d_nb201_train", rc, log, timeout), None
        r = json.loads(lines[-1][len("NB201_EPOCH "):])
        total = NB201_EPOCHS * r["epoch2_seconds"]
        detail = (f"all-conv3x3 cell, C={C} N={N} {px} px, batch {batch}, {r['images']} images: second epoch "
                  f"{r['epoch2_seconds']:.1f} s (train {r['epoch2_train_seconds']:.1f} s), x{NB201_EPOCHS} = "
                  f"{total:,.0f} s ({total / 60:.1f} min) vs goal {NB201_GOAL_S / 60:.0f} min "
                  f"({'met' if total <= NB201_GOAL_S else 'missed'})")
        return "PASS", detail, {**r, "extrapolated_seconds": total, "goal_seconds": NB201_GOAL_S}

    # --------------------------------------------------------------------------------------------- main

    def checks(self) -> list:
        """(name, method, time budget in seconds) of each check, in the order they run."""
        z = self.sizes
        return [("bf16", self.check_bf16, None), ("claim_two_jobs", self.check_claim_two, None),
                ("claim_one_waits", self.check_claim_one, None), ("resume_rng", self.check_resume, None),
                ("packed", self.check_packed, None), ("compiled", self.check_compiled, 2 * z.check_budget),
                ("gdas", self.check_gdas, None), ("darts_v2_hvp", self.check_darts_v2_hvp, None),
                ("darts_supernet", self.check_darts_supernet, None)]

    def figures(self) -> list:
        """(name, method, timeout in seconds) of each figure, in the order they run: packing last (the longest, it
        gets what is left of the budget, and a run cut short still yields the rows it finished)."""
        z = self.sizes
        return [("a_throughput", self.figure_throughput, z.throughput[1]),
                ("c_gdas_epoch", self.figure_search_cost, z.search_cost[1]),
                ("d_nb201_train", self.figure_nb201, z.nb201[-1]),
                ("b_bpe1_packing", self.figure_packing, z.packing[1])]

    def run(self) -> int:
        only = self.args.only
        known = [name for name, _, _ in self.checks() + self.figures()]
        if only is not None and not only <= set(known):
            print(f"error: gpu_check: --only: unknown {', '.join(sorted(only - set(known)))} (known: "
                  f"{', '.join(known)})", flush=True)
            shutil.rmtree(self.scratch, ignore_errors=True)
            return 2
        print(f"gpu_check: {self.report['device']}, torch {torch.__version__}"
              f"{' (smoke: tiny sizes)' if self.smoke else ''}, budget {self.args.budget:g} s; "
              f"JSON: {self.json_path}", flush=True)
        try:
            for name, fn, budget in self.checks():
                if only is None or name in only:
                    self.check(name, fn, budget)
            if not self.args.skip_figures:
                for name, fn, timeout in self.figures():
                    if only is None or name in only:
                        self.figure(name, fn, timeout)
        finally:
            self.save()
            shutil.rmtree(self.scratch, ignore_errors=True)
        return self.summary()

    def summary(self) -> int:
        items = [(n, r) for sec in ("checks", "figures") for n, r in sorted(
            self.report[sec].items(), key=lambda kv: kv[0] if sec == "figures" else 0)]
        print(f"\nsummary ({self.report['device']}, torch {torch.__version__}"
              f"{', smoke' if self.smoke else ''}):")
        width = max(len(n) for n, _ in items) if items else 10
        for n, r in items:
            detail = r["detail"] if len(r["detail"]) <= 110 else r["detail"][:107] + "..."
            print(f"  {n:<{width}}  {r['status']:<4}  {r['seconds']:>6.1f} s  {detail}")
        counts = {s: sum(r["status"] == s for _, r in items) for s in ("PASS", "FAIL", "SKIP")}
        total = time.perf_counter() - self.t0
        print(f"  {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP in {total:.0f} s; "
              f"JSON: {self.json_path}", flush=True)
        return 1 if counts["FAIL"] else 0


# A claiming process (see Run._claims): argv = root mode device k lock_dir hold barrier index.
CLAIM_CHILD = r"""
import json, os, sys, time
root, mode, device, k, lock_dir, hold, barrier, index = sys.argv[1:9]
sys.path.insert(0, root)
import torch
from nasflow import devices
k, hold = int(k), float(hold)
if device == "cuda":
    torch.cuda.init()  # start-up before the barrier: only the claim itself is timed
open(os.path.join(barrier, "ready" + index), "w").close()
while not os.path.exists(os.path.join(barrier, "go")):
    time.sleep(0.005)
t_go = time.time()

def held():  # the lock files that name this process as their holder
    mine = []
    for name in sorted(os.listdir(lock_dir)):
        if name.endswith(".lock") and name != "claim.lock":
            try:
                with open(os.path.join(lock_dir, name)) as f:
                    if f.read().strip() == str(os.getpid()):
                        mine.append(name)
            except OSError:
                pass
    return mine

out = {"pid": os.getpid(), "t_go": t_go}
if mode == "claim":
    with devices.claim_device(device, lock_dir, poll=0.05, timeout=60, jobs_per_gpu=k) as dev:
        out.update(t_acquired=time.time(), device=str(dev), locks=held(),
                   current_device=torch.cuda.current_device() if dev.type == "cuda" else None)
        time.sleep(hold)
        out["t_hold_end"] = time.time()
else:  # "lock": the lock logic claim_device uses on CUDA, on one fake GPU
    index_, fd = devices.acquire_lock(1, lock_dir, names=["fake-gpu"], slots=k, poll=0.05, timeout=60)
    out.update(t_acquired=time.time(), device="fake-gpu%d" % index_, locks=held())
    time.sleep(hold)
    out["t_hold_end"] = time.time()
    devices.release_lock(fd)
out["t_released"] = time.time()
print(json.dumps(out), flush=True)
"""


def nb201_epoch(args) -> int:
    """Figure d, in its own process: 2 epochs of NB201's training at the given size; prints one JSON line."""
    C, N, px, batch, images = (int(v) for v in args.nb201_epoch.split(","))
    device = torch.device(args.device)
    if DATA.is_file():
        splits = load_dataset("npz", path=str(DATA), subset=images or None)
    else:
        splits = load_dataset("digits", subset=images or None)
    torch.manual_seed(0)
    model = build_network(get_space("nb201"), HEAVIEST, channels=C, depth=N, num_classes=splits.num_classes)
    cfg = TrainConfig(epochs=2, batch_size=batch, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                      image_size=px)  # NB201's optimiser (its 200-epoch cosine, cut to the 2 timed epochs)
    r = train(model, splits, cfg, seed=0, device=device, progress=True, desc="nb201")
    h = r["history"]
    print("NB201_EPOCH " + json.dumps({
        "device": describe(device), "arch": HEAVIEST, "images": len(splits.x_train), "eval_images": len(splits.x_eval),
        "epoch1_seconds": h[0]["seconds"], "epoch2_seconds": h[1]["seconds"],
        "epoch2_train_seconds": h[1]["train_seconds"], "train_loss": h[1]["train_loss"]}), flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (required with --device cpu)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads, here and in the figures' processes (default: torch's)")
    ap.add_argument("--budget", type=float, default=470.0, help="seconds for the whole run (default 470)")
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "out"),
                    help="where gpu_check.json, the figures' JSON and logs go (default benchmarks/out)")
    ap.add_argument("--skip-figures", action="store_true", help="the checks only")
    ap.add_argument("--only", type=lambda v: set(filter(None, v.split(","))), default=None,
                    help="comma list of the checks / figures to run (names as in the output), e.g. to rerun a few")
    ap.add_argument("--nb201-epoch", default=None, help=argparse.SUPPRESS)  # figure d's own process
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA, flush=True)
        return 2
    if args.nb201_epoch:
        return nb201_epoch(args)
    if args.device == "cpu" and not args.smoke:
        print("error: gpu_check: --device cpu needs --smoke (the full sizes take hours on a CPU)", flush=True)
        return 2
    return Run(args).run()


if __name__ == "__main__":
    sys.exit(main())
