"""Loop guard: COUNT (INT32 [1]) -> CONTINUE = COUNT while COUNT < 10, else DONE = COUNT.
Only one output, so the loop either goes round again or leaves the pipeline."""

import numpy as np

LIMIT = 10


class Model:
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        count = inputs["COUNT"]
        return {"CONTINUE" if int(count.reshape(-1)[0]) < LIMIT else "DONE": count}
