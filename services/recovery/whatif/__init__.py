"""What-if: past complaints re-decided under a candidate policy, without touching anything.

``simulate`` (pure) re-decides recorded cases; ``source`` reads them in one read-only
transaction; ``summary`` adds the results up; ``report`` renders them (terminal, HTML, CSV).
"""

from services.recovery.whatif.run import WhatIf, what_if

__all__ = ["WhatIf", "what_if"]
