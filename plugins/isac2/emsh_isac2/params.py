"""ISAC2 parameters, with the names and defaults of SPHIRE's ``sp_isac2.py`` (A.4)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from emsh.errors import UsageError

__all__ = ["IsacParams", "PrepParams"]


@dataclass(frozen=True)
class IsacParams:
    """Tunable parameters of ISAC2; names and defaults follow ``sp_isac2.py``.

    Distances are in pixels of the shrunk working stack (``target_nx`` box) unless
    said otherwise; frequencies in cycles/pixel.

    Attributes:
        img_per_grp: members per class in EQ-K-means (K = n // img_per_grp).
        minimum_grp_size: a class is accepted when it has more stable members than this.
        thld_err: pixel-error threshold of the stability test (pixels).
        stab_ali: independent within-group alignments per stability test.
        target_radius: particle radius after shrinking; also the outer ring ``ou``.
        target_nx: working box size.
        ir, rs: inner ring and ring step.
        xr, yr, ts: translational search half-range (yr=-1 means xr) and step.
        maxit: iterations of within-group (reference-free) alignment.
        dst: angular step (degrees) of the discrete alignment passes.
        FL, FH, FF: tanh low-pass start and end cut-off and fall-off.
        fl_step: cut-off increment per EQ-K-means iteration (SPHIRE's 0.05).
        init_iter: maximum within-group (stability) stages per generation.
        iter_reali: stability test every ``iter_reali`` stages.
        delta_good: stop when generation 1 yields no more than this many classes.
        max_generations: cap on generations (SPHIRE has none; see the README).
        rand_seed: seed of the run (None: fresh entropy).
    """

    img_per_grp: int = 200
    minimum_grp_size: int = 60
    thld_err: float = 0.7
    stab_ali: int = 5
    target_radius: int = 29
    target_nx: int = 76
    ir: int = 1
    rs: int = 1
    xr: int = 1
    yr: int = -1
    ts: float = 1.0
    maxit: int = 30
    dst: float = 90.0
    FL: float = 0.2
    FH: float = 0.45
    FF: float = 0.2
    fl_step: float = 0.05
    init_iter: int = 7
    iter_reali: int = 1
    delta_good: int = 0
    max_generations: int = 20
    rand_seed: int | None = None

    def __post_init__(self):
        bad = []
        if self.img_per_grp < 2:
            bad.append(f"img_per_grp={self.img_per_grp} (need >= 2)")
        if not 0 <= self.minimum_grp_size <= self.img_per_grp:
            bad.append(f"minimum_grp_size={self.minimum_grp_size} (need 0..img_per_grp)")
        if self.stab_ali < 2:
            bad.append(f"stab_ali={self.stab_ali} (need >= 2)")
        if self.thld_err <= 0:
            bad.append(f"thld_err={self.thld_err} (need > 0)")
        if self.target_radius < 2 or self.target_nx < 8:
            bad.append(f"target_radius={self.target_radius}, target_nx={self.target_nx}")
        if self.ir < 1 or self.ir >= self.target_radius or self.rs < 1:
            bad.append(f"ir={self.ir}, rs={self.rs} (need 1 <= ir < target_radius)")
        if self.xr < 0 or self.ts <= 0:
            bad.append(f"xr={self.xr}, ts={self.ts}")
        if self.maxit < 2 or self.init_iter < 1 or self.iter_reali < 1:
            bad.append(f"maxit={self.maxit}, init_iter={self.init_iter}, "
                       f"iter_reali={self.iter_reali}")
        if not (0 < self.FL <= self.FH <= 0.5) or self.FF <= 0 or self.fl_step <= 0:
            bad.append(f"FL={self.FL}, FH={self.FH}, FF={self.FF}, fl_step={self.fl_step}")
        if self.dst <= 0 or self.max_generations < 1:
            bad.append(f"dst={self.dst}, max_generations={self.max_generations}")
        reach = self.target_radius + max(self.xr, self.y_range)
        if reach > (self.target_nx - 1) // 2:
            bad.append(f"target_radius {self.target_radius} + shift range {self.xr} does not "
                       f"fit a {self.target_nx} px box")
        if bad:
            raise UsageError("ISAC2 parameters: " + "; ".join(bad))

    @property
    def y_range(self) -> int:
        """The y search half-range (``yr`` or, when -1, ``xr``)."""
        return self.xr if self.yr == -1 else self.yr

    @property
    def iters_per_stage(self) -> int:
        """EQ-K-means iterations between within-group stages: cut-offs FL, FL+step, .., FH.

        SPHIRE's float accumulation gives 0.20, 0.25, .., 0.45 (6 iterations) for the
        defaults; computed here exactly, so the count does not depend on rounding.
        """
        return int(round((self.FH - self.FL) / self.fl_step)) + 1

    def replace(self, **changes) -> IsacParams:
        """A copy with some fields changed (validated)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise UsageError(f"ISAC2: unknown parameter(s) {', '.join(unknown)}")
        return IsacParams(**{**asdict(self), **changes})


@dataclass(frozen=True)
class PrepParams:
    """How the input images become ISAC2's working stack (sp_isac2's names and defaults).

    Attributes:
        skip_prealignment: no reference-free centring (zero initial shifts).
        CTF: phase-flip each image with its own CTF (from ``ctf_star`` or the stack's
            EMAN2 ``ctf`` headers).
        VPP: whiten by the stack's rotationally averaged amplitude spectrum (phase plate
            data); exclusive with ``CTF``.
        ctf_star: RELION STAR file with one CTF per image ("" = none).
        filament_width: width of the horizontal band mask in original pixels (-1: off).
        filament_mask_ignore: normalise with the band but do not multiply it in.
        skip_ordering: keep the averages in the order of acceptance instead of ordering
            them by mutual similarity.
    """

    skip_prealignment: bool = False
    CTF: bool = False
    VPP: bool = False
    ctf_star: str = ""
    filament_width: float = -1.0
    filament_mask_ignore: bool = False
    skip_ordering: bool = False

    def __post_init__(self):
        if self.CTF and self.VPP:
            raise UsageError("ISAC2: CTF=yes and VPP=yes are exclusive (phase flip for "
                             "ordinary data, whitening for phase-plate data)")
        if self.ctf_star and not self.CTF:
            raise UsageError(f"ISAC2: ctf_star={self.ctf_star} needs CTF=yes")
        if self.filament_width == 0 or (self.filament_width < 0 and self.filament_width != -1):
            raise UsageError(f"ISAC2: filament_width={self.filament_width:g} (give a width "
                             "> 0 in pixels, or -1 for no filament mask)")
        if self.filament_mask_ignore and self.filament_width <= 0:
            raise UsageError("ISAC2: filament_mask_ignore=yes needs a filament_width")

    @property
    def filament(self) -> bool:
        """Filament mode on."""
        return self.filament_width > 0
