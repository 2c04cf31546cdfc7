from .. import hookimpl
