"""The static-scene trainer: one readable loop built from parts.

A step: next image -> (pose correction) -> rasterize -> (appearance correction)
-> sum of `loss_terms` -> backward -> optimizer steps -> `strategy` hook ->
observers. Schedules (learning rates, SH degree) are callables run before each
step. Derived trainers (streaming, LOD, compressed, degradation-robust) extend it
by appending loss terms, schedules and observers, swapping the strategy, or
overriding `render` / `build_params`, not by copying the loop.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from splat.errors import SplatError
from splat.scene import GaussianScene
from splat.training import checkpoint, ops, outputs
from splat.training.antialias import apply_filter_3d, compute_filter_3d
from splat.training.config import TrainConfig
from splat.training.data import TrainImages
from splat.training.losses import OpacityReg, PhotometricLoss, ScaleReg, StepContext, psnr
from splat.training.strategy import make_strategy


class NonFiniteLossError(SplatError):
    """The loss became NaN or infinite; the run stopped without overwriting checkpoints."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SplatError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise SplatError(f"unknown device {name!r} (auto, cpu, cuda)")
    return torch.device(name)


def load_data(config: TrainConfig):
    import splat.datasets as D

    if not config.data:
        raise SplatError("no scene given (--data DIR)")
    if not Path(config.data).exists():
        raise SplatError(f"{config.data}: no such folder")
    if config.data_factor < 1:
        raise SplatError(f"--data-factor must be a positive integer, got {config.data_factor}")
    data = D.load(config.data, data_factor=config.data_factor, normalize=config.normalize,
                  test_every=config.test_every, random_init_points=config.init_num_pts, seed=config.seed)
    if not isinstance(data, D.SceneData):
        raise SplatError(f"{config.data}: a video scene; `splat train` trains static scenes")
    return data


def check_config(c: TrainConfig) -> None:
    problems = []
    if c.max_steps < 1:
        problems.append(f"max_steps must be >= 1 (got {c.max_steps})")
    if not 0 <= c.sh_degree <= 3:
        problems.append(f"sh_degree must be 0..3 (got {c.sh_degree})")
    if c.strategy not in ("default", "mcmc"):
        problems.append(f"unknown strategy {c.strategy!r} (default, mcmc)")
    if c.ckpt_every < 1:
        problems.append(f"ckpt_every must be >= 1 (got {c.ckpt_every})")
    if not 0.0 <= c.loss.ssim_lambda <= 1.0:
        problems.append(f"loss.ssim_lambda must be in [0, 1] (got {c.loss.ssim_lambda})")
    if c.mcmc.cap_max < 1:
        problems.append(f"mcmc.cap_max must be >= 1 (got {c.mcmc.cap_max})")
    if problems:
        raise SplatError("invalid training options: " + "; ".join(problems))


class Trainer:
    def __init__(self, config: TrainConfig, data=None, run_dir: str | Path | None = None,
                 observers: list | None = None):
        check_config(config)
        self.config = config
        self.device = resolve_device(config.device)
        self.data = data if data is not None else load_data(config)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.images = TrainImages(self.data, self.data.train_indices, self.device, config.seed + 1)
        train_cams = self.data.cameras[self.data.train_indices]
        self.scene_scale = ops.scene_extent(train_cams.centers)
        self.params = self.build_params()
        self.optimizers = self.build_optimizers()
        self.strategy = make_strategy(config, self.scene_scale, self.generator)
        self.loss_terms: list[Callable[[StepContext], Tensor | None]] = [
            PhotometricLoss(config.loss.ssim_lambda),
            *self.strategy.loss_terms(),
            OpacityReg(config.loss.opacity_reg, name="opacity_reg_extra"),
            ScaleReg(config.loss.scale_reg, name="scale_reg_extra"),
        ]
        self.schedules: list[Callable[[Trainer, int], None]] = [means_lr_schedule]
        self.modules: dict[str, torch.nn.Module] = {}
        self.aux_optimizers: dict[str, torch.optim.Optimizer] = {}
        self._build_hooks()
        self.observers: list = list(observers or [])
        self.paused = threading.Event()
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.evals: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self.filter_3d: Tensor | None = None
        if config.mip_filter_3d:
            self.update_filter_3d()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.last_checkpoint: Path | None = None
        self.initial_eval: dict[str, Any] | None = None
        self._timings: dict[str, float] = {}

    # --- construction -------------------------------------------------------------------

    def build_params(self) -> torch.nn.ParameterDict:
        """3DGS initialization: SfM (or the dataset's random) points, or a random cube."""
        c, g = self.config, torch.Generator().manual_seed(self.config.seed)
        use_points = c.init == "sfm" or (c.init == "auto" and self.data.points_are_sfm)
        if c.init == "sfm" and not self.data.points_are_sfm:
            raise SplatError(f"{self.data.root}: --init sfm, but the dataset has no SfM points")
        if use_points:
            pts, rgb = self.data.points.float(), self.data.point_colors.float()
            if len(pts) > c.max_init_points:
                keep = torch.randperm(len(pts), generator=g)[: c.max_init_points]
                pts, rgb = pts[keep], rgb[keep]
        else:
            pts = ops.random_cube_points(self.data.cameras[self.data.train_indices], c.init_num_pts, c.init_extent, g)
            rgb = torch.rand(c.init_num_pts, 3, generator=g)
        n = len(pts)
        if n == 0:
            raise SplatError(f"{self.data.root}: no initial points")
        dist = ops.knn_scale(pts).clamp(min=1e-7)
        strat_init = c.strategy == "mcmc"  # gsplat's MCMC defaults: opacity 0.5, scale x 0.1
        opacity = 0.5 if strat_init else c.init_opacity
        scale = 0.1 * c.init_scale if strat_init else c.init_scale
        k = (c.sh_degree + 1) ** 2
        sh0 = ((rgb - 0.5) / 0.28209479177387814)[:, None, :]
        params = {
            "means": pts,
            "scales": torch.log(dist * scale)[:, None].repeat(1, 3),
            "quats": torch.rand(n, 4, generator=g),
            "opacities": torch.logit(torch.full((n,), opacity)),
            "sh0": sh0,
            "shN": torch.zeros(n, k - 1, 3),
        }
        return torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(self.device).contiguous()) for k, v in params.items()})

    def learning_rates(self) -> dict[str, float]:
        o = self.config.optim
        return {"means": o.means_lr * self.scene_scale, "scales": o.scales_lr, "quats": o.quats_lr,
                "opacities": o.opacities_lr, "sh0": o.sh0_lr, "shN": o.shN_lr}  # fmt: skip

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One Adam per parameter (gsplat style), fused kernels where torch has them."""
        lrs = self.learning_rates()
        return {name: _adam([p], lrs[name], self.config.optim.eps) for name, p in self.params.items()}

    def _build_hooks(self) -> None:
        c = self.config
        n_images = len(self.data.cameras)
        if c.appearance != "none":
            from splat.training.appearance import AppearanceModel

            self.modules["appearance"] = AppearanceModel(n_images, c.appearance).to(self.device)
            self.aux_optimizers["appearance"] = _adam(list(self.modules["appearance"].parameters()), c.appearance_lr, 1e-15)
        if c.pose_opt:
            from splat.training.pose import PoseRefinement

            self.modules["pose"] = PoseRefinement(n_images).to(self.device)
            self.aux_optimizers["pose"] = _adam(list(self.modules["pose"].parameters()), c.pose_lr, 1e-15)
            self.loss_terms.append(_PoseReg(c.pose_reg))

    def set_params(self, tensors: dict[str, Tensor]) -> None:
        """Replace all parameters (e.g. from a checkpoint) and rebuild fresh optimizers."""
        self.params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.contiguous()) for k, v in tensors.items()})
        self.optimizers = self.build_optimizers()

    def add_observer(self, observer) -> None:
        self.observers.append(observer)

    # --- views of the current state -------------------------------------------------------

    @property
    def sh_degree_now(self) -> int:
        return min(self.step // max(1, self.config.sh_degree_interval), self.config.sh_degree)

    def splat_tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Differentiable (means, quats, linear scales, opacities, SH [N, K, 3])."""
        p = self.params
        opac = torch.sigmoid(p["opacities"])
        if self.filter_3d is not None:
            scales, opac = apply_filter_3d(p["scales"], opac, self.filter_3d)
        else:
            scales = torch.exp(p["scales"])
        return p["means"], p["quats"], scales, opac, torch.cat([p["sh0"], p["shN"]], 1)

    @torch.no_grad()
    def snapshot(self) -> GaussianScene:
        """A detached CPU copy of the current Gaussians (3D filter baked in)."""
        means, quats, scales, opac, _ = self.splat_tensors()
        norm = torch.tensor(self.data.normalization.transform, dtype=torch.float64)
        return GaussianScene(
            means.detach().cpu().clone(), quats.detach().cpu().clone(), torch.log(scales).detach().cpu(),
            torch.logit(opac, eps=1e-7).detach().cpu(), self.params["sh0"].detach().cpu().clone(),
            self.params["shN"].detach().cpu().clone(), antialiased=self.config.antialiased, normalization=norm,
        )  # fmt: skip

    def update_filter_3d(self) -> None:
        cams = self.data.cameras[self.data.train_indices]
        self.filter_3d = compute_filter_3d(self.params["means"].detach(), cams.viewmats, cams.Ks,
                                           cams.widths, cams.heights)

    def background(self) -> Tensor:
        b = self.config.background
        if b == "auto":
            b = "random" if self.images.has_alpha else "white"
        if b == "random":
            return torch.rand(3, generator=self.images.generator).to(self.device)
        return torch.full((3,), 1.0 if b == "white" else 0.0, device=self.device)

    # --- one step -------------------------------------------------------------------------

    def render(self, batch: dict[str, Any], background: Tensor):
        """Rasterize the current Gaussians into the batch's camera (with pose correction)."""
        from splat.rasterizer import rasterize

        viewmats = batch["viewmat"]
        ids = torch.tensor([batch["index"]], device=self.device)
        if "pose" in self.modules:
            viewmats = self.modules["pose"](viewmats, ids)
        means, quats, scales, opac, sh = self.splat_tensors()
        h, w = batch["image"].shape[1:3]
        colors, alphas, meta = rasterize(
            means, quats, scales, opac, sh, viewmats, batch["K"], w, h,
            sh_degree=self.sh_degree_now, backgrounds=background[None], antialiased=self.config.antialiased,
            absgrad=getattr(self.strategy, "absgrad", False),
        )  # fmt: skip
        if "appearance" in self.modules:
            colors = self.modules["appearance"](colors, ids)
        return colors, alphas, meta

    def train_step(self) -> dict[str, float]:
        """One optimization step; returns its metrics. Raises NonFiniteLossError."""
        step = self.step
        timer = _Timer(self._timings)
        for schedule in self.schedules:
            schedule(self, step)
        with timer("data"):
            bg = self.background()
            batch = self.images.get(self.images.next_index(), bg)
        with timer("render"):
            colors, alphas, meta = self.render(batch, bg)
        info = {"meta": meta, "n_cameras": 1, "width": meta.width, "height": meta.height}
        self.strategy.step_pre_backward(self.params, self.optimizers, step, info)
        ctx = StepContext(self, step, colors, batch["image"], alphas, meta, batch["mask"])
        with timer("loss"):
            terms = {}
            for term in self.loss_terms:
                value = term(ctx)
                if value is not None:
                    terms[getattr(term, "name", type(term).__name__)] = value
            loss = sum(terms.values())
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            bad = [k for k, v in terms.items() if not math.isfinite(float(v.detach()))]
            raise NonFiniteLossError(
                f"non-finite loss ({loss_value}) at step {step + 1} (terms: {', '.join(bad) or '?'}); training stopped, "
                f"last good checkpoint: {self.last_checkpoint or 'none yet'}")
        with timer("backward"):
            loss.backward()
        with timer("optimizer"):
            for opt in [*self.optimizers.values(), *self.aux_optimizers.values()]:
                opt.step()
                opt.zero_grad(set_to_none=True)
        with timer("densify"):
            changed = self.strategy.step_post_backward(self.params, self.optimizers, step, info)
            if self.filter_3d is not None and (
                    changed or (step % self.config.mip_filter_every == 0 and step < self._refine_stop())):
                self.update_filter_3d()
        self.step = step + 1
        with torch.no_grad():
            train_psnr = float(psnr(colors.detach(), batch["image"]))
        return {"loss": loss_value, "psnr": train_psnr, "num_gaussians": float(len(self.params["means"])),
                "sh_degree": float(self.sh_degree_now), **{k: float(v.detach()) for k, v in terms.items()}}  # fmt: skip

    def _refine_stop(self) -> int:
        return self.config.mcmc.refine_stop if self.config.strategy == "mcmc" else self.config.default.refine_stop

    # --- the loop -------------------------------------------------------------------------

    def evaluate(self, max_renders: int = 0, render_dir: Path | None = None) -> dict[str, Any]:
        from splat.training.evaluate import evaluate

        idx = self.data.test_indices or self.data.train_indices[:: max(1, len(self.data.train_indices) // 8)]
        return evaluate(self.snapshot(), self.data, idx, background=self.data.background, device=self.device,
                        render_dir=render_dir, max_renders=max_renders, sh_degree=self.sh_degree_now)

    def save_checkpoint(self) -> Path:
        self.last_checkpoint = checkpoint.save(self)
        return self.last_checkpoint

    def train(self) -> Path:
        """Run to `max_steps` (from `self.step`), writing outputs; returns the run directory."""
        c = self.config
        if self.run_dir is None:
            self.run_dir = outputs.new_run_dir(c)
        else:
            outputs.ensure_writable(self.run_dir)
        outputs.write_config(self.run_dir, c)
        if self.step == 0 and self.initial_eval is None:
            self.initial_eval = {k: v for k, v in self.evaluate().items() if k != "per_view"}
        for obs in self.observers:
            obs.on_start(self)
        progress = _Progress(c.max_steps, self.step, enabled=c.progress)
        start = time.perf_counter() - self.elapsed
        try:
            with progress:
                while self.step < c.max_steps:
                    while self.paused.is_set():
                        time.sleep(0.05)
                        start += 0.05
                    metrics = self.train_step()
                    self.elapsed = time.perf_counter() - start
                    if self.step % c.log_every == 0 or self.step == 1:
                        self.history.append({"step": self.step, "elapsed": self.elapsed, **metrics})
                    progress.update(self.step, metrics)
                    for obs in self.observers:
                        obs.on_step(self, self.step, metrics)
                    if self.step in c.eval_steps and self.step != c.max_steps:
                        self._record_eval()
                    if self.step % c.ckpt_every == 0 and self.step != c.max_steps:
                        self.save_checkpoint()
        except NonFiniteLossError:
            self._write_metrics(status="stopped: non-finite loss")
            raise
        except (torch.OutOfMemoryError, MemoryError) as err:
            raise _oom(err) from None
        except RuntimeError as err:
            if "out of memory" in str(err).lower() or "can't allocate memory" in str(err).lower():
                raise _oom(err) from None
            raise
        finally:
            for obs in self.observers:
                obs.on_end(self)
        self.finish()
        return self.run_dir

    def _record_eval(self, render_dir: Path | None = None, max_renders: int = 0) -> dict[str, Any]:
        t0 = time.perf_counter()
        result = self.evaluate(max_renders=max_renders, render_dir=render_dir)
        row = {"step": self.step, "num_gaussians": len(self.params["means"]), "elapsed": self.elapsed,
               "eval_s": time.perf_counter() - t0, **{k: v for k, v in result.items() if k != "per_view"}}  # fmt: skip
        self.evals = [e for e in self.evals if e["step"] != self.step] + [row]
        self._write_metrics(status="running", per_view=result["per_view"])
        return row

    def finish(self) -> None:
        """Final checkpoint, evaluation with renders, scene.ply, metrics and plots."""
        self.save_checkpoint()
        self._record_eval(render_dir=self.run_dir / "renders" / "test", max_renders=self.config.save_renders)
        self.snapshot().in_original_frame().save(self.run_dir / "scene.ply")
        self._write_metrics(status="done", per_view=None)
        outputs.write_plots(self.run_dir, self.history, self.evals)

    def _write_metrics(self, status: str, per_view: dict | None = None) -> None:
        if self.run_dir is None:
            return
        last = self.evals[-1] if self.evals else {}
        metrics = {
            "status": status, "scene": str(self.config.data), "method": self.config.method,
            "strategy": self.config.strategy, "step": self.step, "max_steps": self.config.max_steps,
            "num_gaussians": len(self.params["means"]), "train_time_s": self.elapsed,
            "device": str(self.device), "psnr": last.get("psnr"), "ssim": last.get("ssim"),
            "lpips": last.get("lpips"), "initial": self.initial_eval, "evals": self.evals,
            "profile_s": dict(self._timings), "curve": self.history,
        }  # fmt: skip
        if per_view is not None:
            metrics["per_view"] = per_view
        outputs.write_metrics(self.run_dir, metrics)

    # --- resume ---------------------------------------------------------------------------

    @classmethod
    def resume(cls, run_dir: str | Path, observers: list | None = None, **overrides: Any) -> "Trainer":
        """A trainer in the state of `run_dir`'s newest checkpoint (its config.yml; overrides
        such as max_steps or device may change)."""
        import dataclasses

        run_dir = Path(run_dir)
        config = outputs.read_config(run_dir)
        if overrides:
            config = dataclasses.replace(config, **overrides)
        ckpts = checkpoint.list_checkpoints(run_dir)
        trainer = cls(config, run_dir=run_dir, observers=observers)
        if ckpts:
            checkpoint.restore(trainer, checkpoint.load(ckpts[-1]))
            trainer.last_checkpoint = ckpts[-1]
        return trainer


def means_lr_schedule(trainer: Trainer, step: int) -> None:
    """Exponential decay of the position learning rate to `means_lr_final_factor` x at max_steps."""
    o, c = trainer.config.optim, trainer.config
    lr = o.means_lr * trainer.scene_scale * o.means_lr_final_factor ** (min(step, c.max_steps) / c.max_steps)
    for group in trainer.optimizers["means"].param_groups:
        group["lr"] = lr


class _PoseReg:
    name = "pose_reg"

    def __init__(self, weight: float):
        self.weight = weight

    def __call__(self, ctx: StepContext) -> Tensor | None:
        return self.weight * ctx.trainer.modules["pose"].regularizer() if self.weight > 0 else None


def _adam(params: list, lr: float, eps: float) -> torch.optim.Adam:
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, eps=eps, foreach=True)


def _oom(err: BaseException) -> SplatError:
    return SplatError(f"out of memory during training ({str(err).splitlines()[0][:120]}): "
                      f"downscale the images with --data-factor 2 (or 4), or cap the Gaussians "
                      f"(--strategy mcmc --mcmc.cap-max N, or a higher --default.grow-grad2d)")


class _Timer:
    """Accumulates seconds per phase into a dict (the profile in metrics.json)."""

    def __init__(self, store: dict[str, float]):
        self.store = store
        self.name = ""

    def __call__(self, name: str) -> "_Timer":
        self.name = name
        return self

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.store[self.name] = self.store.get(self.name, 0.0) + time.perf_counter() - self.t0


class _Progress:
    """rich progress bar: step, loss, PSNR, Gaussians, it/s, ETA."""

    def __init__(self, total: int, start: int, enabled: bool = True):
        self.enabled = enabled
        self.total, self.start = total, start
        self.last = 0.0

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.bar = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                refresh_per_second=4,
            )  # fmt: skip
            self.bar.__enter__()
            self.task = self.bar.add_task("train", total=self.total, completed=self.start, stats="", speed="")
            self.t0, self.s0 = time.perf_counter(), self.start
        return self

    def update(self, step: int, m: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < 0.25 and step < self.total:
            return
        self.last = now
        rate = (step - self.s0) / max(now - self.t0, 1e-9)
        stats = f"loss {m['loss']:.4f}  PSNR {m['psnr']:.2f}  {int(m['num_gaussians']):,} GS"
        self.bar.update(self.task, completed=step, stats=stats, speed=f"{rate:.1f} it/s")

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)
