"""The numpy safetensors reader and writer of the parity scripts: tools/normnet_st.py (shared
with tools/from_torch.py), re-exported under its old name.

    tensors, metadata = st.read_safetensors(path)
    st.write_safetensors(path, tensors, metadata=None)
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from normnet_st import (parse_safetensors, read_safetensors, serialize_safetensors,  # noqa: E402,F401
                        write_safetensors)
