"""Specification of ``DG SIM``: a simulated micrograph data set with known truth."""

from emsh.spec import Field, Operation, Prompt

_IMPL = "emsh_defocus.ops_sim:dg_sim"

DG_SIM = Operation(
    code="DG SIM",
    title="Simulate micrographs of ADK with known defocus, positions and orientations",
    impl=_IMPL,
    prompts=(
        Prompt("folder", "OUTPUT FOLDER", kind="text",
               help="Micrographs/micNNN.mrc and truth/ are written inside it"),
        Prompt("counts", "NUMBER OF MICROGRAPHS, PARTICLES PER MICROGRAPH", fields=(
            Field("n_mics", "int", min=1, max=999, help="micrographs (3-digit numbers)"),
            Field("per_mic", "int", min=1, help="particles per micrograph"))),
        Prompt("sizes", "BOX SIZE (PX), PIXEL SIZE (A)", fields=(
            Field("box", "int", min=16, max=512, help="particle box and map size (px)"),
            Field("apix", "float", min=0.1, help="pixel size of micrographs and map (A)"))),
        Prompt("mic_size", "MICROGRAPH SIZE (PX)", fields=(
            Field("mic_size", "int", min=32, help="square micrographs of this size"),)),
        Prompt("noise", "SNR, DEFOCUS MIN, MAX (UM)", fields=(
            Field("snr", "float", min=0.0, help="particle signal variance / noise variance"),
            Field("df_min", "float", min=0.0, help="smallest mean defocus (um)"),
            Field("df_max", "float", min=0.0, help="largest mean defocus (um)"))),
    ),
    outputs=("n_mics", "n_particles"),
    options=(
        Field("seed", "int", -1, help="random seed (-1: from the session's generator)"),
        Field("model", "str", "adk_closed", help="atomic model: adk_closed, adk_open or a file"),
        Field("kv", "float", 300.0, min=1.0, help="voltage (kV)"),
        Field("cs", "float", 2.7, min=0.0, help="spherical aberration (mm)"),
        Field("amp", "float", 0.07, min=0.0, max=1.0, help="amplitude contrast (fraction)"),
        Field("astig_A", "float", 400.0, min=0.0, help="largest astigmatism U-V (A)"),
        Field("ice", "float", 0.1, min=0.0, max=0.95,
              help="fraction of the noise variance that is CTF-modulated (ice)"),
        Field("bfactor", "float", 50.0, min=0.0, help="CTF envelope B-factor (A^2)"),
    ),
    help=("Simulates a data set for the defocus-group pipeline: the map of the atomic model "
          "(box^3 at the pixel size), projected at orientations uniform on the sphere with "
          "random in-plane angles, placed at random non-overlapping positions (a particle "
          "diameter apart, a half box from the edges), each micrograph with its own defocus "
          "(uniform between min and max) and astigmatism (U-V uniform up to astig_A, random "
          "angle), a B-factor envelope, white noise plus CTF-modulated ice noise at the "
          "given SNR (signal variance over a particle-sized disc / noise variance) and a "
          "smooth background. Protein is white (emsh's CTF sign). Writes "
          "Micrographs/micNNN.mrc and truth/: defocus (mic, defocus, U-V, angle, U, V), "
          "coordsNNN (x, y 1-based centre pixel, psi, theta, phi), map.mrc and params "
          "(apix, kV, Cs, amp, box, radius, n_mics)."),
    see_also=("DG DEFOCUS", "DG PICK"),
)

OPERATIONS = [DG_SIM]
