"""Specifications of the defocus plugin's selection and plotting operations:
DG SELECT, DG VIEWS, DG PLOT FSC (implementations in :mod:`emsh_defocus.ops_plot`)."""

from emsh.spec import Field, Operation, Prompt

_IMPL = "emsh_defocus.ops_plot:"


def _align_prompts():
    return (
        Prompt("align", "ALIGNMENT DOC TEMPLATE", kind="template",
               help="AP SH docs, *** = group number (Alignment/align_01_***)"),
        Prompt("groups", "GROUP NUMBERS", kind="numbers",
               help="defocus groups: 1-24, a list, or a selection doc"),
    )


DG_SELECT = Operation(
    "DG SELECT", "Correlation selection per defocus group, with a CC histogram PNG",
    impl=_IMPL + "dg_select", outputs=("n_kept", "cc_threshold"),
    see_also=("DG VIEWS", "AP SH", "VO MQ", "HD D"),
    help=("Reads each group's AP SH doc (register 5 image number, 11 correlation; the last "
          "line of a key counts). A positive answer f keeps the best floor(f n + 0.5) "
          "particles of each group of n (ties at the cut: lower member number first); a "
          "negative answer -t keeps every particle with CC >= t. Each group gets a "
          "selection doc (key = 1..k in member order: register 1 member number, 2 CC) that "
          "numbers prompts accept. The PNG (* for none; a name without extension gets "
          ".png) stacks the groups' CC histograms with the threshold of each group (or the "
          "common one) marked. Registers: particles kept, and the threshold (fraction "
          "mode: the lowest CC kept in any group). Every alignment doc is checked before "
          "anything is written. Outputs are replaced."),
    prompts=_align_prompts() + (
        Prompt("keep", "KEEP FRACTION (0-1) OR -CC THRESHOLD", fields=(
            Field("fraction", "float", max=1.0,
                  help="0 < f <= 1: best fraction per group; -t: CC >= t"),)),
        Prompt("out", "OUTPUT SELECTION DOC TEMPLATE", kind="template",
               help="*** = group number (Alignment/good***)"),
        Prompt("png", "HISTOGRAM PNG", kind="file_out", optional=True, patterns=("*.png",)),
    ))

DG_VIEWS = Operation(
    "DG VIEWS", "View distribution: particles per reference direction, doc and polar PNG",
    impl=_IMPL + "dg_views", outputs=("n_views", "max_count"),
    see_also=("DG SELECT", "VO EA", "AP SH"),
    help=("Counts the particles of the listed groups per reference (AP SH register 4; 0 = "
          "unmatched, not counted), optionally only the members listed in register 1 of "
          "each group's selection doc. The output doc has one line per reference of the "
          "angles doc (VO EA: psi, theta, phi): register 1 particles, 2 theta, 3 phi, 4 "
          "straight matches, 5 mirrored matches (AP SH register 15 < 0). The PNG is a "
          "polar plot, angle = phi, radius = theta, marker area and colour = count; "
          "mirrored matches are drawn at the antipode (180 - theta, phi + 180), outside "
          "the dashed 90-degree circle. Registers: views with particles, the largest count."),
    prompts=_align_prompts() + (
        Prompt("sel", "SELECTION DOC TEMPLATE (OR *)", kind="template", optional=True,
               help="DG SELECT's docs (register 1 = member number), or * for all"),
        Prompt("angles", "REFERENCE ANGLES DOC", kind="doc", help="VO EA's angles doc"),
        Prompt("out", "OUTPUT DOC", kind="doc_out"),
        Prompt("png", "OUTPUT PNG", kind="file_out", optional=True, patterns=("*.png",)),
    ))

DG_PLOT_FSC = Operation(
    "DG PLOT FSC", "Plot an FSC doc as PNG; resolution at FSC 0.5 and 0.143",
    impl=_IMPL + "dg_plot_fsc", outputs=("res_05", "res_0143"),
    see_also=("FSC", "RF 3"),
    help=("Reads an FSC doc (the FSC op's: register 1 frequency in cycles/pixel, 2 "
          "resolution in Å, 3 FSC) and plots FSC against spatial frequency (1/Å) with "
          "lines at 0.5 and 0.143; the title gives the resolution at each. A pixel size "
          "of 0 takes it from the doc (register 1 times register 2). The registers get "
          "the resolutions (Å) where the curve last falls below 0.5 and 0.143, "
          "interpolated linearly between shells; without a crossing, that of the last "
          "shell. A PNG name without extension gets .png."),
    prompts=(
        Prompt("doc", "FSC DOC", kind="doc"),
        Prompt("pixel", "PIXEL SIZE (A)", fields=(
            Field("apix", "float", 0.0, min=0.0, help="Å per pixel; 0 = from the doc"),)),
        Prompt("png", "OUTPUT PNG", kind="file_out", patterns=("*.png",)),
    ))

OPERATIONS = [DG_SELECT, DG_VIEWS, DG_PLOT_FSC]
