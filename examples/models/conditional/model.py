"""Router: INPUT (FP32), CHOICE (INT32 [1]) -> OUTPUT0 = INPUT when CHOICE == 0,
else OUTPUT1 = INPUT. Only one output, so only one downstream step fires."""

import numpy as np


class Model:
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        choice = int(inputs["CHOICE"].reshape(-1)[0])
        return {"OUTPUT0" if choice == 0 else "OUTPUT1": inputs["INPUT"]}
