"""Fourier transforms, Fourier filters and CTFs: FT, FQ, FQ NP, TF C3, TF CT3, TF C, TF CT,
TF COR, TF CTS, TF ED.

Thin operation specs over :mod:`emsh.kernels.fourier`, :mod:`emsh.kernels.filters`,
:mod:`emsh.kernels.ctf_spider` and :mod:`emsh.kernels.ctf_estimate`, with SPIDER's prompt
texts and order (answer-dependent prompts included: ``FQ`` asks per filter type, the
``TF`` family accepts the legacy wavelength in place of the voltage).

Fourier files are SPIDER's (IFORM -11/-12, -21/-22): the half spectrum of
``conj(numpy.fft.rfftn(x))``, unnormalised (:func:`emsh.kernels.fourier.spider_ft`). They
are written to disk only (inline buffers hold real data); inputs may be files, stack
members (``stk@3``), whole stacks (``stk@``) or, where SPIDER has a list prompt,
templates (``img***``).
"""

from __future__ import annotations

import numpy as np

from emsh.ops import _util as U
from emsh.spec import Field, Operation, Prompt


# ----------------------------------------------------------------------------- helpers

def _real_shape(ctx, answer: str, nums=None) -> tuple[int, ...] | None:
    """Real-space shape of one image of a disk answer when it is a Fourier file, else None."""
    from emsh import io as eio

    ref = U.parse(answer)
    if ref.inline is not None:
        return None
    addr = ref.member(nums[0]) if ref.template else ref.path
    inf = eio.info(U.disk_address(ctx, addr))
    return tuple(inf.shape) if inf.is_fourier else None


def _read(ctx, answer: str, numbers=None):
    """``(batch, numbers, real shape or None)``; the shape is set for Fourier input."""
    ref = U.parse(answer)
    nums = U.numbers(ctx, numbers) if ref.template else None
    data, got = U.read_batch(ctx, answer, nums)
    return data, got, _real_shape(ctx, answer, got) if np.iscomplexobj(data) else None


def _write_fourier(ctx, answer: str, F: np.ndarray, real_shape, nums) -> None:
    """Write a batch of SPIDER half spectra ``(n, *half)`` to a file, member, stack or template."""
    from emsh import io as eio
    from emsh.io.spider import write_fourier

    if not ctx.is_root:
        return
    ref = U.parse(answer)
    ctx.check(ref.inline is None, f"{answer}: inline files hold real data; give a file name "
              "for the Fourier output", "OUTPUT FILE")
    ctx.check(eio.format_of(ref.path or answer, for_writing=True) == "spider",
              f"{answer}: Fourier files are written in SPIDER format only", "OUTPUT FILE")
    if not ref.many:
        ctx.check(F.shape[0] == 1, f"{answer}: {F.shape[0]} spectra cannot go to one file",
                  "OUTPUT FILE")
        write_fourier(ref.path, F[0], real_shape, overwrite=True, index=ref.index)
    elif ref.whole_stack and list(nums) == list(range(1, len(nums) + 1)):
        write_fourier(ref.path, F, real_shape, overwrite=True, stack=True)
    else:
        for i, n in enumerate(nums):
            path, _, idx = ref.member(n).partition("@")
            write_fourier(path, F[i], real_shape, overwrite=True,
                          index=int(idx) if idx else None)


def _tmpl(name):
    return lambda a: U.is_template(a.get(name))


# ----------------------------------------------------------------------------- FT

def ft(ctx, src, numbers, dst):
    """FT: real -> SPIDER Fourier file, or Fourier file -> real (as the input is)."""
    from emsh.kernels.fourier import spider_ft, spider_ift

    data, nums, shape = _read(ctx, src, numbers)
    if shape is None:
        _write_fourier(ctx, dst, spider_ft(data, data.ndim - 1), data.shape[1:], nums)
    else:
        U.write_batch(ctx, dst, spider_ift(data, shape), nums)


FT = Operation(
    "FT", "Fourier transform: real to Fourier file, or back", impl=ft, see_also=("TF COR",),
    help=("Forward: conj(rfftn(x)), unnormalised, written as a SPIDER Fourier file (IFORM "
          "-12/-11 for even/odd NX images, -22/-21 volumes; record length NX+2 or NX+1). "
          "Inverse: divides by the number of pixels, so FT twice gives the input back."),
    prompts=(
        Prompt("src", "INPUT FILE", kind="image"),
        Prompt("numbers", "FILE NUMBERS OR SELECTION DOC. FILE NAME", kind="numbers",
               when=_tmpl("src")),
        Prompt("dst", "OUTPUT FILE", kind="image_out"),
    ))


# ----------------------------------------------------------------------------- FQ, FQ NP

_FQ_TYPES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14)


def _ftype(*types):
    return lambda a: a.get("ftype") in types


def _fq(ctx, src, dst, ftype, r1, r2, temperature, f1, f2, f3, f4, bfac, dmul, cutoff,
        pad: bool):
    from emsh.kernels.filters import fq

    ctx.check(ftype in _FQ_TYPES, f"filter type {ftype} is not one of "
              f"{', '.join(map(str, _FQ_TYPES))}", "FILTER TYPE (1-10,13,14)")
    data, nums = U.read_batch(ctx, src)
    ctx.check(not np.iscomplexobj(data), f"{src}: FQ filters real images; this is a "
              "Fourier file", "INPUT FILE")
    if ftype in (1, 2, 3, 4, 13):
        params = [r1] + ([r2] if r2 is not None else [])
    elif ftype in (5, 6):
        params = [r1, temperature]
    elif ftype in (7, 8, 9, 10):
        params = [f1, f2] + ([f3, f4] if (f3 or f4) else [])
    else:
        params = [bfac, dmul, cutoff]
    if ftype in (1, 2, 3, 4, 5, 6, 13) and r1 > 1.0:
        ctx.log(f"  Frequency: {r1 / data.shape[-1]:6.4f}")
    U.write_batch(ctx, dst, fq(data, ftype, params, ndim=data.ndim - 1, pad=pad), nums)


def fq_padded(ctx, src, dst, ftype, r1, r2, temperature, f1, f2, f3, f4, bfac, dmul, cutoff):
    """FQ: Fourier filter after padding 2x with the border average (SPIDER's ``FQ``)."""
    _fq(ctx, src, dst, ftype, r1, r2, temperature, f1, f2, f3, f4, bfac, dmul, cutoff, True)


def fq_np(ctx, src, dst, ftype, r1, r2, temperature, f1, f2, f3, f4, bfac, dmul, cutoff):
    """FQ NP: the same filters without padding."""
    _fq(ctx, src, dst, ftype, r1, r2, temperature, f1, f2, f3, f4, bfac, dmul, cutoff, False)


_FQ_PROMPTS = (
    Prompt("src", "INPUT FILE", kind="image"),
    Prompt("dst", "OUTPUT FILE", kind="image_out"),
    Prompt("ftype", "FILTER TYPE (1-10,13,14)", fields=(Field("ftype", "int", min=1, max=14),)),
    Prompt("radius", "FILTER RADIUS (IN FREQUENCY OR PIXEL UNITS)",
           fields=(Field("r1", "float", min=0.0),
                   Field("r2", "float", None, help="second radius (elliptic, along y)")),
           when=_ftype(1, 2, 3, 4, 5, 6, 13)),
    Prompt("temperature", "TEMPERATURE (0=CUTOFF)",
           fields=(Field("temperature", "float", 0.0),), when=_ftype(5, 6)),
    Prompt("band", "LOWER & UPPER LIMITING FREQ. (IN FREQ OR PIXEL UNITS)",
           fields=(Field("f1", "float", min=0.0), Field("f2", "float", min=0.0),
                   Field("f3", "float", 0.0, help="elliptic Butterworth: pass along y"),
                   Field("f4", "float", 0.0, help="elliptic Butterworth: stop along y")),
           when=_ftype(7, 8, 9, 10)),
    Prompt("bfac", "B FACTOR (PIXEL**2)", fields=(Field("bfac", "float"),), when=_ftype(14)),
    Prompt("dmul", "D MULTIPLIER", fields=(Field("dmul", "float", 1.0),), when=_ftype(14)),
    Prompt("cutoff", "FREQUENCY CUTOFF", fields=(Field("cutoff", "float", 0.5),),
           when=_ftype(14)),
)
_FQ_HELP = ("Types: 1/2 top-hat low/high-pass, 3/4 Gaussian, 5/6 Fermi (radius, "
            "temperature), 7/8 Butterworth (pass, stop; 4 values: elliptic), 9/10 raised "
            "cosine (lower, upper), 13 raised sinc window (radius), 14 B factor "
            "D*exp(B f^2) below the cutoff. Frequencies <= 1 are cycles/pixel (0.5 = "
            "Nyquist); larger values are pixels of the image and become P/NX. High-passes "
            "keep the zero frequency. Works on images, volumes and whole stacks.")

FQ = Operation(
    "FQ", "Quick Fourier filter (low/high-pass, Gaussian, Fermi, Butterworth, ...), padded",
    impl=fq_padded, prompts=_FQ_PROMPTS, see_also=("FQ NP",),
    help=_FQ_HELP + " The input is padded to twice its size with its border average first.")

FQ_NP = Operation(
    "FQ NP", "Quick Fourier filter without padding", impl=fq_np, prompts=_FQ_PROMPTS,
    see_also=("FQ",), help=_FQ_HELP + " No padding: the filter acts on the circular image.")


# ----------------------------------------------------------------------------- TF C3/CT3/C/CT

def _tf(ctx, cs, defocus, kv, fmax, source, spread, astig, azimuth, acr, geh, sign):
    """The answers as a SpiderTF, logging the wavelength as SPIDER does."""
    from emsh.kernels.ctf import SpiderTF

    ctx.check(sign in (1.0, -1.0), f"sign must be +1 or -1, got {sign:g}", "SIGN (+1 OR -1.)")
    ans = SpiderTF(max(cs, 1e-4), defocus, kv, fmax, source, spread, astig, azimuth, acr,
                   geh, sign)
    lam = ans.lambda_A                      # refuses 0 and 1, as SPIDER
    ctx.log(f"  Lambda: {lam:6.4f}" if kv < 1 else
            f"  Kev: {kv:6.2f} --> Wavelength lambda: {lam:6.4f}")
    return ans


def _tf3(ctx, dst, cs, defocus, kv, n, fmax, source, spread, astig, azimuth, acr, geh, sign,
         flip):
    from emsh.kernels.ctf import spider_tf_c3

    ans = _tf(ctx, cs, defocus, kv, fmax, source, spread, astig, azimuth, acr, geh, sign)
    tf = spider_tf_c3(ans, n, flip=flip)
    _write_fourier(ctx, dst, tf[None], (n, n, n), [1])


def tf_c3(ctx, dst, cs, defocus, kv, n, fmax, source, spread, astig, azimuth, acr, geh, sign):
    """TF C3: straight CTF volume in Fourier format."""
    _tf3(ctx, dst, cs, defocus, kv, n, fmax, source, spread, astig, azimuth, acr, geh, sign,
         False)


def tf_ct3(ctx, dst, cs, defocus, kv, n, fmax, source, spread, astig, azimuth, acr, sign):
    """TF CT3: phase-flipping (+-1) CTF volume in Fourier format."""
    _tf3(ctx, dst, cs, defocus, kv, n, fmax, source, spread, astig, azimuth, acr, 0.0, sign,
         True)


def _tf2(ctx, dst, cs, defocus, kv, nx, ny, fmax, source, spread, astig, azimuth, acr, geh,
         sign, flip):
    from emsh.kernels.ctf import spider_tf_ct

    ans = _tf(ctx, cs, defocus, kv, fmax, source, spread, astig, azimuth, acr, geh, sign)
    ny = ny or nx
    _write_fourier(ctx, dst, spider_tf_ct(ans, nx, ny, flip=flip)[None], (ny, nx), [1])


def tf_c(ctx, dst, cs, defocus, kv, nx, ny, fmax, source, spread, astig, azimuth, acr, geh,
         sign):
    """TF C: straight 2D CTF image in Fourier format."""
    _tf2(ctx, dst, cs, defocus, kv, nx, ny, fmax, source, spread, astig, azimuth, acr, geh,
         sign, False)


def tf_ct(ctx, dst, cs, defocus, kv, nx, ny, fmax, source, spread, astig, azimuth, acr, sign):
    """TF CT: phase-flipping (+-1) 2D CTF image in Fourier format."""
    _tf2(ctx, dst, cs, defocus, kv, nx, ny, fmax, source, spread, astig, azimuth, acr, 0.0,
         sign, True)


def _tf_prompts(out_text: str, size: Prompt, geh: bool) -> tuple[Prompt, ...]:
    acr = (Prompt("acr", "AMPLITUDE CONTRAST RATIO [0-1], GAUSSIAN ENV. HALFWIDTH", fields=(
        Field("acr", "float", 0.1, min=0.0, max=1.0),
        Field("geh", "float", 0.0, help="Gaussian envelope half-width (1/Å); 0: none"))) if geh
        else Prompt("acr", "AMPLITUDE CONTRAST RATIO [0-1]",
                    fields=(Field("acr", "float", 0.1, min=0.0, max=1.0),)))
    return (
        Prompt("dst", out_text, kind="image_out"),
        Prompt("cs", "SPHERICAL ABERRATION CS [MM]", fields=(Field("cs", "float"),)),
        Prompt("defocus", "DEFOCUS [A], ELECTRON VOLTAGE [Kev]", fields=(
            Field("defocus", "float", help="Å, underfocus > 0"),
            Field("kv", "float", 300.0, help="kV; a value below 1 is the wavelength in Å"))),
        size,
        Prompt("fmax", "MAX SPATIAL FREQUENCY [1/A]",
               fields=(Field("fmax", "float", min=1e-9, help="0.5 / pixel size"),)),
        Prompt("envelope", "SOURCE SIZE [1/A], DEFOCUS SPREAD [A]",
               fields=(Field("source", "float", 0.0), Field("spread", "float", 0.0))),
        Prompt("astig", "ASTIGMATISM [A], AZIMUTH [DEG]",
               fields=(Field("astig", "float", 0.0), Field("azimuth", "float", 0.0))),
        acr,
        Prompt("sign", "SIGN (+1 OR -1.)", fields=(Field("sign", "float", -1.0),)),
    )


_N3 = Prompt("n", "NUMBER OF SPATIAL FREQUENCY POINTS", fields=(Field("n", "int", min=1),))
_N2 = Prompt("n", "NUMBER OF SPATIAL FREQUENCY POINTS IN X & Y",
             fields=(Field("nx", "int", min=1), Field("ny", "int", 0, min=0)))
_TF_HELP = ("TF(k) = [(1-ACR) sin(gamma) - ACR cos(gamma)] E(k) exp(-k^2/GEH^2) times the "
            "sign, as SPIDER's TFD; frequency step fmax/(N/2). The output is a Fourier "
            "file with zero imaginary parts, for TF COR / TF CTS. The voltage answer may "
            "be the legacy wavelength (a value below 1, Å).")

TF_C3 = Operation("TF C3", "Straight CTF volume (Fourier format)", impl=tf_c3,
                  prompts=_tf_prompts("OUTPUT FILE", _N3, True), see_also=("TF COR", "TF CTS"),
                  help=_TF_HELP + " SPIDER's TF C3 applies astigmatism as a constant "
                  "defocus offset DZ - DZA/2 sin(2 AZ); emsh reproduces that.")
TF_CT3 = Operation("TF CT3", "Phase-flipping CTF volume (Fourier format)", impl=tf_ct3,
                   prompts=_tf_prompts("PHASE FLIPPING CTF OUTPUT FILE", _N3, False),
                   see_also=("TF C3",), help=_TF_HELP + " Values are +-sign by the sign of TF.")
TF_C = Operation("TF C", "Straight 2D CTF image (Fourier format)", impl=tf_c,
                 prompts=_tf_prompts("CTF OUTPUT FILE", _N2, True), see_also=("TF CT",),
                 help=_TF_HELP + " NY 0 or omitted means NY = NX.")
TF_CT = Operation("TF CT", "Phase-flipping 2D CTF image (Fourier format)", impl=tf_ct,
                  prompts=_tf_prompts("PHASE FLIPPING CTF OUTPUT FILE", _N2, False),
                  see_also=("TF C", "TF COR"),
                  help=_TF_HELP + " Values are +-sign by the sign of TF; no envelope.")


# ----------------------------------------------------------------------------- TF COR, TF CTS

def tf_cor(ctx, src, ctf, dst):
    """TF COR: multiply an image/volume (real or Fourier) by a CTF file; real output."""
    from emsh.kernels.ctf import tf_cor as kernel

    data, nums, shape = _read(ctx, src)
    c = U.read_one(ctx, ctf)
    ctx.check(np.iscomplexobj(c), f"{ctf}: the CTF must be a Fourier file (TF C, TF C3 ...)",
              "CTF FILE")
    ctx.check(c.shape == (data.shape[1:] if shape else data.shape[1:-1]
                          + (data.shape[-1] // 2 + 1,)),
              f"{ctf} does not fit the size of {src}", "CTF FILE")
    U.write_batch(ctx, dst, kernel(data, c, shape), nums)


def tf_cts(ctx, src, numbers, ctf, snr, dst):
    """TF CTS: Wiener-like CTF-corrected merge of a series of images/volumes."""
    from emsh.kernels.ctf import tf_cts as kernel

    data, nums, shape = _read(ctx, src, numbers)
    cref = U.parse(ctf)
    names = [cref.member(n) for n in nums] if cref.template else [ctf] * len(nums)
    ctfs = np.stack([U.read_one(ctx, name) for name in names])
    ctx.check(np.iscomplexobj(ctfs), f"{ctf}: CTFs must be Fourier files",
              "TEMPLATE FOR IMAGE/VOLUME CTF FILES")
    want = data.shape if shape else data.shape[:-1] + (data.shape[-1] // 2 + 1,)
    ctx.check(ctfs.shape == want, f"the CTF files {ctfs.shape[1:]} do not fit the inputs",
              "TEMPLATE FOR IMAGE/VOLUME CTF FILES")
    U.write_one(ctx, dst, kernel(data, ctfs, snr, shape))
    ctx.log(f"  {len(nums)} FILES MERGED INTO: {dst}")


TF_COR = Operation(
    "TF COR", "Multiply an image/volume by a CTF file", impl=tf_cor, see_also=("TF CTS",),
    help=("Output = inverse FT of FT(input) x CTF (real). The input may be real or a "
          "Fourier file, a single file or a whole stack (stk@, one CTF for all)."),
    prompts=(
        Prompt("src", "IMAGE/VOLUME FILE", kind="image"),
        Prompt("ctf", "CTF FILE", kind="image"),
        Prompt("dst", "OUTPUT FILE", kind="image_out"),
    ))

TF_CTS = Operation(
    "TF CTS", "CTF correction of a series with SNR (Wiener merge)", impl=tf_cts,
    see_also=("TF COR", "TF C3"),
    help=("Output = inverse FT of sum_g F_g conj(CTF_g) / (sum_g |CTF_g|^2 + 1/SNR). The "
          "CTF template takes the same numbers as the inputs (one CTF per defocus group)."),
    prompts=(
        Prompt("src", "TEMPLATE FOR IMAGE/VOLUME FILES", kind="template"),
        Prompt("numbers", "FILE NUMBERS OR SELECTION DOC. FILE NAME", kind="numbers",
               when=_tmpl("src")),
        Prompt("ctf", "TEMPLATE FOR IMAGE/VOLUME CTF FILES", kind="template"),
        Prompt("snr", "SNR", fields=(Field("snr", "float", min=1e-12),)),
        Prompt("dst", "OUTPUT FILE", kind="image_out"),
    ))


# ----------------------------------------------------------------------------- TF ED

def tf_ed(ctx, src, apix, cs, lam, acr, dst):
    """TF ED: defocus from a centred power spectrum; registers 0, 0, astigmatism, defocus,
    cutoff (1/Å)."""
    from emsh.kernels.ctf import SpiderTF, ctf_1d, estimate_defocus
    from emsh.kernels.fourier import radial_average

    ps = U.read_one(ctx, src)
    ctx.check(ps.ndim == 2 and ps.shape[0] == ps.shape[1] and not np.iscomplexobj(ps),
              f"{src}: expected a square, real power spectrum", "INPUT FILE")
    kv = SpiderTF(cs, 0.0, lam).to_params().voltage_kV if lam < 1 else lam
    fit = estimate_defocus(ps, apix, kV=kv, cs=cs, amp_contrast=acr)
    p = fit.params
    cut = 1.0 / fit.res_range_A[1]
    r, prof = radial_average(ps)
    freq = r / (ps.shape[0] * apix)
    ctf2 = ctf_1d(p, freq) ** 2
    _write_recon_doc(ctx, dst, np.stack([freq, prof, ctf2], axis=1))
    mean, astig = 0.5 * (p.defocus_u_A + p.defocus_v_A), p.defocus_u_A - p.defocus_v_A
    ctx.log(f"  DEFOCUS: {mean:10.1f} A  ASTIGMATISM: {astig:8.1f} A AT {p.astig_angle_deg:6.1f}"
            f" DEG  CUTOFF: {cut:8.4f} 1/A  FIT: {fit.score:6.3f}")
    return 0.0, 0.0, float(astig), float(mean), float(cut)


def _write_recon_doc(ctx, path, rows) -> None:
    U.write_session_doc(ctx, path, np.arange(1, len(rows) + 1), rows,
                        "  FREQ (1/A)    ROT. AVERAGE   FITTED CTF**2")


TF_ED = Operation(
    "TF ED", "Estimate defocus from a power spectrum", impl=tf_ed,
    outputs=("dum1", "dum2", "astigmatism", "defocus", "cutoff"), see_also=("TF C3",),
    help=("Fits defocus and astigmatism to a square power spectrum with its origin at "
          "the centre (N/2+1), e.g. an average of tile spectra. Registers: two dummies, "
          "the astigmatism (Å, U - V), the mean defocus (Å) and the highest frequency "
          "fitted (1/Å). The doc lists per ring the frequency (1/Å), the rotational "
          "average and the fitted CTF^2 (SPIDER lists noise estimates instead). The "
          "wavelength answer may also be the voltage in kV (a value above 1)."),
    prompts=(
        Prompt("src", "INPUT FILE", kind="image"),
        Prompt("optics", "PIXEL SIZE[A] and SPHERICAL ABBERATION CS [MM]",
               fields=(Field("apix", "float", min=1e-6), Field("cs", "float", 2.0))),
        Prompt("lam", "WAVELENGTH LAMBDA [A]", fields=(Field("lam", "float", min=1e-6),)),
        Prompt("acr", "AMPLITUDE CONTRAST RATIO [0-1]",
               fields=(Field("acr", "float", 0.1, min=0.0, max=1.0),)),
        Prompt("dst", "OUTPUT DOCUMENT FILE", kind="doc_out"),
    ))

OPERATIONS = [FT, FQ, FQ_NP, TF_C3, TF_CT3, TF_C, TF_CT, TF_COR, TF_CTS, TF_ED]
