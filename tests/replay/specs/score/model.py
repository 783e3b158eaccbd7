"""Y (FP32) -> S = Y + 1; a negative Y is refused (the bug score-v2 fixes)."""

import numpy as np


class Model:
    batchable = True  # elementwise: a chunk of requests is one call

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        y = inputs["Y"]
        if (y < 0).any():
            raise ValueError("negative Y")
        return {"S": y + np.float32(1)}
