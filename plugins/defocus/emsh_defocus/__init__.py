"""emsh defocus-group plugin: SPIDER's reconstruction with reference projections and
defocus groups, from micrographs to a refined, CTF-corrected map.

This module only gathers the operation specifications (cheap to import). Each family of
operations keeps its specification in a ``spec_*`` module and its implementation in the
matching ``ops_*`` module; the algorithms live in modules named for what they hold.
"""

from emsh.spec import Plugin

from .spec_ctf import OPERATIONS as _CTF
from .spec_pick import OPERATIONS as _PICK
from .spec_plot import OPERATIONS as _PLOT
from .spec_sim import OPERATIONS as _SIM

__version__ = "0.1.0"

PLUGIN = Plugin(
    name="defocus",
    version=__version__,
    summary="Defocus-group single-particle reconstruction (SPIDER's reference-projection tech)",
    operations=[*_SIM, *_CTF, *_PICK, *_PLOT],
)
