"""Specifications of ``DG DEFOCUS`` (power spectra and defocus per micrograph) and
``DG GROUPS`` (defocus groups)."""

from emsh.spec import Field, Operation, Prompt

_IMPL = "emsh_defocus.ops_ctf:"

DG_DEFOCUS = Operation(
    code="DG DEFOCUS",
    title="Power spectrum, defocus and astigmatism of each micrograph",
    impl=_IMPL + "dg_defocus",
    mpi="all",
    prompts=(
        Prompt("mic_template", "MICROGRAPH TEMPLATE", kind="template",
               help="e.g. Micrographs/mic***.mrc"),
        Prompt("mic_numbers", "MICROGRAPH NUMBERS", kind="numbers",
               help="e.g. 1-24, or a selection doc"),
        Prompt("ctf", "PIXEL SIZE (A), VOLTAGE (KV), CS (MM), AMPLITUDE CONTRAST", fields=(
            Field("apix", "float", min=0.01, help="pixel size (A)"),
            Field("kv", "float", 300.0, min=1.0, help="voltage (kV)"),
            Field("cs", "float", 2.7, min=0.0, help="spherical aberration (mm)"),
            Field("amp", "float", 0.07, min=0.0, max=1.0, help="amplitude contrast (fraction)"))),
        Prompt("band", "TILE SIZE (PX), RESOLUTION RANGE LOW, HIGH (A)", fields=(
            Field("tile", "int", 256, help="square tiles of the periodogram (px, >= 64)"),
            Field("res_lo", "float", 30.0, min=0.0, help="low-resolution end of the fit (A)"),
            Field("res_hi", "float", 6.0, min=0.0, help="high-resolution end of the fit (A)"))),
        Prompt("ps_template", "POWER SPECTRUM TEMPLATE (OR *)", kind="template", optional=True,
               help="e.g. Power_Spectra/pw***; * writes no spectra"),
        Prompt("doc", "OUTPUT DOC", kind="doc_out", help="e.g. Power_Spectra/defocus"),
    ),
    outputs=("n_mics", "median_defocus"),
    options=(
        Field("overlap", "float", 0.5, min=0.0, max=0.9, help="tile overlap (fraction)"),
        Field("df_min", "float", 3000.0, min=1.0, help="smallest mean defocus searched (A)"),
        Field("df_max", "float", 60000.0, min=1.0, help="largest mean defocus searched (A)"),
        Field("astig_max", "float", 2000.0, min=0.0, help="largest U-V searched (A)"),
    ),
    help=("For each micrograph: the power spectrum averaged over overlapping square tiles "
          "(periodogram; each tile's mean removed), then defocus and astigmatism fitted "
          "in the resolution band (a smooth background plus a smooth envelope times CTF^2; "
          "grid search of the mean defocus on the rotational average, of the astigmatism "
          "on the 2D spectrum, then a joint refinement). Writes the centred spectra (unless "
          "*) and a doc, key = micrograph: 1 micrograph, 2 defocus (A, mean of U and V, "
          "underfocus positive), 3 astigmatism U-V (A), 4 angle of U from the x axis "
          "(deg), 5 fit score (0..1). Under mpiexec the micrographs are split over the "
          "ranks."),
    see_also=("DG GROUPS", "TF ED", "DG SIM"),
)

DG_GROUPS = Operation(
    code="DG GROUPS",
    title="Sort micrographs into defocus groups (contiguous ranges, balanced counts)",
    impl=_IMPL + "dg_groups",
    prompts=(
        Prompt("doc", "DEFOCUS DOC", kind="doc",
               help="from DG DEFOCUS: registers 1 micrograph, 2 defocus (A)"),
        Prompt("n_groups", "NUMBER OF GROUPS", fields=(
            Field("n_groups", "int", min=1, help="1 .. number of micrographs"),)),
        Prompt("mic_doc", "MICROGRAPH GROUP DOC", kind="doc_out",
               help="key = micrograph: 1 micrograph, 2 defocus (A), 3 group"),
        Prompt("group_doc", "GROUP DOC", kind="doc_out",
               help="key = group: 1 group, 2 micrographs, 3 mean, 4 min, 5 max defocus (A)"),
    ),
    outputs=("n_groups",),
    help=("Orders the micrographs by defocus and cuts them into the given number of "
          "groups of consecutive defocus whose micrograph counts differ by at most one "
          "(group 1 has the smallest defoci)."),
    see_also=("DG DEFOCUS", "DG WINDOW"),
)

OPERATIONS = [DG_DEFOCUS, DG_GROUPS]
