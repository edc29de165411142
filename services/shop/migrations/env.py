from shared.migrations import run_env
from shop.models import Base

run_env(Base.metadata, "shop")
