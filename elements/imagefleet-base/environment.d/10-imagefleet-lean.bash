# Leave documentation, manual pages and translations out of the image
# (pre-install.d/05-imagefleet-dpkg-excludes); 0 keeps them.
export DIB_IMAGEFLEET_DPKG_EXCLUDES=${DIB_IMAGEFLEET_DPKG_EXCLUDES:-1}
