"""The inline styles results render with: HTML that reads well with no stylesheet and no kernel
(nbviewer, GitHub, an HTML export), in JupyterLab's fonts when there are some."""

BOX = "font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; line-height: 1.5"
CHECKERBOARD = (
    "background-color:#fff;background-image:linear-gradient(45deg,#ccc 25%,transparent 25%),"
    "linear-gradient(-45deg,#ccc 25%,transparent 25%),linear-gradient(45deg,transparent 75%,#ccc 75%),"
    "linear-gradient(-45deg,transparent 75%,#ccc 75%);background-size:16px 16px;"
    "background-position:0 0,0 8px,8px -8px,-8px 0"
)
