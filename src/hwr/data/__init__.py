"""DataModules: one base (`base.CharDataModule`) and a thin subclass per dataset."""
