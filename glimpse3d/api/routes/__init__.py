"""The API's routers: projects (upload, status, list, delete, cancel, events), pipeline
(generate, refine, export), files (local storage) and health."""
