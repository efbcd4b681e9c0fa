"""Specifications of the defocus plugin's picking and windowing operations:
DG PICK, DG WINDOW (implementations in :mod:`emsh_defocus.ops_pick`)."""

from emsh.spec import Field, Operation, Prompt

_IMPL = "emsh_defocus.ops_pick:"


def _mic_prompts():
    return (
        Prompt("mic_template", "MICROGRAPH TEMPLATE", kind="template",
               help="*** = micrograph number (Micrographs/mic***.mrc)"),
        Prompt("mic_numbers", "MICROGRAPH NUMBERS", kind="numbers",
               help="1-24, a list, or a selection doc"),
    )


DG_PICK = Operation(
    "DG PICK", "Reference-free particle picking by locally normalised correlation",
    impl=_IMPL + "dg_pick", outputs=("n_picks",), mpi="all",
    see_also=("DG WINDOW", "DG DEFOCUS"),
    help=("Band-passes each micrograph (0.3/radius to 2.25/radius cycles/px unless "
          "f_low/f_high are given), correlates it with a Gaussian blob (sigma radius/3) "
          "inside a mask of twice the radius and divides by the local SD under the mask "
          "(SPIDER's local fast correlation, with FFTs over the whole micrograph). The "
          "score map is put in SD units (median and MAD); its local maxima whose box "
          "fits inside the micrograph are kept greedily from the highest, no two closer "
          "than min_distance (default the diameter), above the threshold (0: Otsu's "
          "split of the peak heights into noise and particles), at most MAX PICKS (0: no "
          "limit) per micrograph. polarity=1 picks white particles (emsh's simulated "
          "micrographs, phase-flipped data), polarity=-1 dark ones (raw micrographs). Each "
          "micrograph gets a doc (key = pick, highest score first: register 1 x, 2 y, "
          "1-based pixel of the centre, 3 score in SD units). Under mpiexec the "
          "micrographs are shared out over the ranks. Register: total picks."),
    prompts=_mic_prompts() + (
        Prompt("size", "PARTICLE RADIUS, BOX SIZE (PX)", fields=(
            Field("radius", "float", min=1.0, help="particle radius in pixels"),
            Field("box", "int", min=4, help="box size in pixels; picks keep box/2 from edges"),
        )),
        Prompt("limits", "THRESHOLD (SD, 0 = AUTO), MAX PICKS PER MICROGRAPH", fields=(
            Field("threshold", "float", 0.0, min=0.0,
                  help="least score in SD units of the score map; 0 = automatic"),
            Field("max_picks", "int", 0, min=0, help="0 = no limit"),
        )),
        Prompt("coord_template", "OUTPUT COORDINATE DOC TEMPLATE", kind="template",
               help="*** = micrograph number (Particles/coords/coo***)"),
    ),
    options=(
        Field("polarity", "int", 1, min=-1, max=1,
              help="1: white particles (emsh.sim, phase-flipped); -1: dark (raw micrographs)"),
        Field("min_distance", "float", 0.0, min=0.0,
              help="least distance between picks in px (0: the particle diameter)"),
        Field("f_low", "float", 0.0, min=0.0, max=0.5,
              help="band-pass low edge, cycles/px (0: 0.3/radius)"),
        Field("f_high", "float", 0.0, min=0.0, max=0.5,
              help="band-pass high edge, cycles/px (0: 2.25/radius, at most 0.45)"),
    ))

DG_WINDOW = Operation(
    "DG WINDOW", "Window particles into per-defocus-group stacks with normalised background",
    impl=_IMPL + "dg_window", outputs=("n_particles", "n_groups"),
    see_also=("DG PICK", "DG GROUPS"),
    help=("Cuts a box x box window around each coordinate of each micrograph (the "
          "coordinate's pixel at index box/2, SPIDER's box/2+1), skipping windows that "
          "cross the micrograph's edge (logged). Each window's background (pixels farther "
          "than the radius from the centre) is fitted with a plane a + b x + c y, which is "
          "subtracted, and the window is scaled so the background has mean 0 and SD 1. "
          "The micrograph group doc (DG GROUPS: key = micrograph, register 2 defocus in A, "
          "3 group) puts each micrograph's particles in its group's stack (*: all in "
          "group 1, defocus 0). Particle ids run over the micrographs in the order listed, "
          "then the coordinate doc's order. Writes one SPIDER stack and one selection doc "
          "per group (key = member: 1 member, 2 particle id, 3 micrograph, 4 x, 5 y, "
          "6 defocus), the particle doc (key = id: 1 id, 2 micrograph, 3 x, 4 y, "
          "5 defocus, 6 group, 7 member) and the group count doc (key = group: 1 group, "
          "2 particles, 3 mean defocus). A group without particles gets an empty "
          "selection doc and no stack. Outputs are replaced. Registers: particles "
          "windowed, highest group number."),
    prompts=_mic_prompts() + (
        Prompt("coord_template", "COORDINATE DOC TEMPLATE", kind="template",
               help="DG PICK's docs: register 1 x, 2 y (1-based)"),
        Prompt("size", "BOX SIZE, PARTICLE RADIUS (PX)", fields=(
            Field("box", "int", min=4, help="box size in pixels"),
            Field("radius", "float", min=1.0,
                  help="particle radius in pixels; the background lies outside it"),
        )),
        Prompt("group_doc", "MICROGRAPH GROUP DOC (OR *)", kind="doc", optional=True,
               help="DG GROUPS' def_groups: key = micrograph, 2 defocus (A), 3 group"),
        Prompt("stack_template", "OUTPUT STACK TEMPLATE", kind="template",
               help="*** = group number (Particles/data***)"),
        Prompt("sel_template", "OUTPUT SELECTION DOC TEMPLATE", kind="template",
               help="*** = group number (Particles/sel***)"),
        Prompt("particle_doc", "PARTICLE DOC", kind="doc_out"),
        Prompt("count_doc", "GROUP COUNT DOC", kind="doc_out"),
    ))

OPERATIONS = [DG_PICK, DG_WINDOW]
