"""``make demo``: a small end-to-end run of the defocus-group pipeline on simulated data.

Simulates micrographs of adenylate kinase (PDB 1AKE, bundled) with a per-micrograph
defocus and astigmatism, ice noise and an uneven background (DG SIM), then runs SPIDER's
"reconstruction with reference projections and defocus groups" as emsh procedures
(``procedures/recon``): power spectra and defocus, defocus groups, picking, windowing,
reference projections per group, AP SH alignment, CC selection, view averages,
split-half reconstructions per group, CTF-corrected merge, FSC, filtering and a
refinement with a finer angular step. Prints the final resolution, the resolution
against the true map and where the map and the plots are. Every file goes into a new
folder ``demo_out/run-NNN``; nothing is overwritten.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _new_run_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    n = 1 + max((int(p.name[4:]) for p in root.glob("run-[0-9][0-9][0-9]")), default=0)
    out = root / f"run-{n:03d}"
    out.mkdir()
    return out


def run(n_mics: int = 6, per_mic: int = 40, box: int = 48, apix: float = 3.0,
        snr: float = 1.0, steps=(15.0, 8.0), seed: int = 3,
        out_root: Path = Path("demo_out")) -> dict:
    """Run the demo in a new ``out_root/run-NNN``; returns the figures it printed."""
    from emsh_defocus import pipeline as P
    from emsh_defocus import score as S

    t0 = time.perf_counter()
    out = _new_run_folder(Path(out_root))
    n_groups = max(1, min(3, n_mics // 2))
    P.simulate_project(out, n_mics=n_mics, per_mic=per_mic, box=box, apix=apix,
                       mic_size=512, snr=snr, defocus_um=(1.0, 3.0), seed=seed)
    steps = tuple(float(s) for s in steps)
    params = P.ReconParams(apix=apix, box=box, radius=int(round(box / 4)), n_mics=n_mics,
                           n_groups=n_groups, tile=128, res_lo=30.0, res_hi=8.0, steps=steps,
                           ranges=(0.0,) + (15.0,) * (len(steps) - 1),
                           shifts=(2,) + (1,) * (len(steps) - 1))
    times = P.run_pipeline(out, params)
    r = S.evaluate(out)
    ref = out / "Refinement"
    last = ref / f"it{r['iteration']:02d}"
    figures = {
        "micrographs": n_mics, "particles_picked": r["windowed"]["n"],
        "particles_kept": r["alignment"]["n_kept"], "defocus_groups": n_groups,
        "box": box, "apix": apix, "snr": snr,
        "defocus_median_err_pct": r["defocus"]["median_defocus_err_pct"],
        "picking_recall": r["picking"]["recall"],
        "fsc_0.5_halves_A": r["fsc_halves_0.5_A"], "fsc_0.143_halves_A": r["fsc_halves_0.143_A"],
        "fsc_0.5_vs_truth_A": r["fsc_vs_truth_0.5_A"],
        "fsc_0.5_true_angles_A": r["true_angles_fsc_vs_truth_0.5_A"],
        "nyquist_A": 2 * apix, "step_seconds": times,
        "seconds": round(time.perf_counter() - t0, 1), "folder": str(out),
    }
    print(f"emsh demo: defocus-group reconstruction of adenylate kinase, {n_mics} simulated "
          f"micrographs, {box} px boxes at {apix} A/px, SNR {snr}")
    print(f"  defocus error (median) {figures['defocus_median_err_pct']} %, picking recall "
          f"{figures['picking_recall']:.2f}, {figures['particles_kept']} of "
          f"{figures['particles_picked']} particles kept, {n_groups} defocus groups")
    print(f"  final resolution (FSC of half maps): {r['fsc_halves_0.5_A']:.2f} A at 0.5, "
          f"{r['fsc_halves_0.143_A']:.2f} A at 0.143 (Nyquist {2 * apix:.1f} A)")
    print(f"  FSC 0.5 against the true map: {r['fsc_vs_truth_0.5_A']:.2f} A "
          f"(same particles at their true angles: {r['true_angles_fsc_vs_truth_0.5_A']:.2f} A)")
    print(f"  map: {ref / 'final_map.spi'}   filtered: {ref / 'final_map_filtered.spi'}")
    print(f"  plots: {ref / 'final_fsc.png'}, {last / 'cc_hist.png'}, {last / 'views.png'}")
    print(f"  procedures: {out / 'procs'} (run again: cd {out} && emsh run procs/run_all.proc)")
    print(f"  done in {figures['seconds']} s")
    return figures


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the demo."""
    p = argparse.ArgumentParser(prog="python -m emsh.demo", description=__doc__.splitlines()[0])
    p.add_argument("--mics", type=int, default=6)
    p.add_argument("--per-mic", type=int, default=40)
    p.add_argument("--snr", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    a = p.parse_args(argv)
    run(n_mics=a.mics, per_mic=a.per_mic, snr=a.snr, seed=a.seed, out_root=a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
