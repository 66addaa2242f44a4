"""Errors the batch reports to the operator as exit status 2."""


class RefusedInput(Exception):
    """Input the batch refuses as a whole: names the file and the problem, never an ID number."""

    def __init__(self, file: str, problem: str):
        self.file = str(file)
        self.problem = problem
        super().__init__(f"{self.file}: {problem}")
