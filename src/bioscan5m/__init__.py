"""bioscan5m: the BIOSCAN-5M insect biodiversity benchmark as one toolkit.

Data flows one way: sources → records → encoders → embeddings → tasks → reports.
"""

from bioscan5m.errors import BioscanError

__version__ = "0.1.0"
__all__ = ["BioscanError", "__version__"]
