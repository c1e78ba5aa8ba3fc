"""The pages: `trainfiles report` writes them as a static site, `trainfiles serve` serves them
live with the actions of the command line. Needs the `web` extra (Starlette, uvicorn, Jinja2)."""
