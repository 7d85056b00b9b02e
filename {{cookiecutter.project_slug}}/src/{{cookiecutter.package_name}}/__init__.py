"""{{ cookiecutter.description }}"""

__version__ = "{{ cookiecutter.version }}"
PROJECT_NAME = "{{ cookiecutter.project_name }}"
