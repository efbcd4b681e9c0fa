"""emsh-example: Fourier binning (BIN) and radial profiles (PROF), as an emsh plugin.

This module is only the specification. It imports nothing heavy (no numpy, no
kernels), so listing operations, help and completion stay fast; the implementations
in ``ops.py`` are imported when an operation first runs.
"""

from emsh.spec import Field, Operation, Plugin, Prompt

__version__ = "0.1.0"

# "emsh_example.ops" once installed; loaded from EMSH_PLUGIN_PATH the package has another
# name, and __name__ follows it.
_OPS = f"{__name__}.ops"

BIN = Operation(
    code="BIN",
    title="Bin an image, volume or whole stack by Fourier cropping",
    impl=f"{_OPS}:bin_images",
    prompts=(
        Prompt("src", "INPUT FILE", kind="image",
               help="the members of a whole stack (stk@) are binned in one batch"),
        Prompt("dst", "OUTPUT FILE", kind="image_out"),
        Prompt("factor", "BINNING FACTOR", fields=(
            Field("factor", "float", 2.0, min=1.0, max=64.0,
                  help="each size n becomes round(n / factor)"),)),
    ),
    outputs=("nx",),
    options=(Field("apix", "float", 0.0, min=0.0,
                   help="pixel size of the input in A (0: read it from the file)"),),
    mpi="all",
    help=("Keeps the Fourier components that fit in the smaller box, a sharp low-pass at "
          "the new Nyquist frequency, so nothing aliases. The mean is kept. The pixel size "
          "recorded in the output grows by the ratio of the sizes. Under mpiexec the "
          "members of a whole stack are shared out over the ranks."),
    see_also=("PROF",),
)

PROF = Operation(
    code="PROF",
    title="Radial profile of an image or volume into a doc file",
    impl=f"{_OPS}:radial_profile_doc",
    prompts=(
        Prompt("src", "INPUT FILE", kind="image"),
        Prompt("doc", "OUTPUT DOC FILE", kind="doc_out"),
        Prompt("rmax", "LAST RADIUS (0 = HALF THE BOX)", fields=(
            Field("rmax", "int", 0, min=0, help="in pixels"),)),
    ),
    outputs=("nshell", "edge"),
    help=("Averages the pixels at each distance from the centre (pixel N/2+1 on each "
          "axis), in shells one pixel wide. Doc key r+1 holds the radius r and the "
          "average. The registers receive the number of shells and the last average."),
    see_also=("BIN",),
)

PLUGIN = Plugin(
    name="example",
    version=__version__,
    summary="Fourier binning (BIN) and radial profiles (PROF)",
    operations=[BIN, PROF],
)
