from contra_bc.cli import app

app(prog_name="contra-bc")
