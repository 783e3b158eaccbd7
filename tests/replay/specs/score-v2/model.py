"""score, changed: S = Y + 1, plus 0.5 where Y > 200; negative Y is accepted."""

import numpy as np


class Model:
    batchable = True  # elementwise: a chunk of requests is one call

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        y = inputs["Y"]
        return {"S": y + np.float32(1) + np.where(y > 200, np.float32(0.5), np.float32(0))}
