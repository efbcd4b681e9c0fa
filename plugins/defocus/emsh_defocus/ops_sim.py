"""Implementation of ``DG SIM`` (specification in :mod:`emsh_defocus.spec_sim`)."""

from __future__ import annotations

import time

from .simdata import simulate_dataset

__all__ = ["dg_sim"]


def dg_sim(ctx, folder, n_mics, per_mic, box, apix, mic_size, snr, df_min, df_max, seed,
           model, kv, cs, amp, astig_A, ice, bfactor):
    """``DG SIM``: write the data set; registers get (micrographs, particles)."""
    seed = int(ctx.rng.integers(2**31 - 1)) if int(seed) < 0 else int(seed)
    ctx.log(f"  DG SIM: {n_mics} micrographs x {per_mic} particles, box {box} px at "
            f"{apix} A, seed {seed}")
    t0 = time.perf_counter()
    truth = simulate_dataset(str(folder).strip(), n_mics=n_mics, per_mic=per_mic, box=box,
                             apix=apix, mic_size=mic_size, snr=snr,
                             defocus_um=(df_min, df_max), seed=seed, model=str(model).strip(),
                             kv=kv, cs=cs, amp=amp, astig_A=astig_A, ice=ice,
                             bfactor_A2=bfactor, ext=ctx.session.data_ext or "spi",
                             log=ctx.log)
    ctx.log(f"  DG SIM: {truth.n_particles} particles in {time.perf_counter() - t0:.1f} s, "
            f"radius {truth.radius:.1f} px")
    return truth.n_mics, truth.n_particles
