@echo off
rem Start the exit manager alone (normally the supervisor runs it; use this to debug).
rem Usage: start_exit_manager.bat [exit manager options]
rem First run: creates .venv-daytrader and installs the suite; later runs reinstall only
rem when pyproject.toml is newer than .venv-daytrader\.installed.
setlocal EnableExtensions
cd /d "%~dp0"

rem Never write or reuse stale bytecode: a leftover __pycache__ once ran old code for a
rem whole trading day. Python compiles in memory instead (a second or two at start).
set "PYTHONDONTWRITEBYTECODE=1"
if exist "__pycache__" rd /s /q "__pycache__"
for /d /r "daytrading" %%D in (__pycache__) do @if exist "%%D" rd /s /q "%%D"
for /d /r "ibsim" %%D in (__pycache__) do @if exist "%%D" rd /s /q "%%D"
for /d /r "scripts" %%D in (__pycache__) do @if exist "%%D" rd /s /q "%%D"

set "VENV=.venv-daytrader"
set "PY=.venv-daytrader\Scripts\python.exe"
set "MARKER=.venv-daytrader\.installed"

if exist "%PY%" goto venv_ready
echo Creating the Python environment %VENV% (first run only)...
py -3 -m venv "%VENV%" >nul 2>&1
if not exist "%PY%" python -m venv "%VENV%"
if not exist "%PY%" (
    echo ERROR: could not create %VENV%. Install Python 3.11 or newer from python.org
    echo        and tick "Add python.exe to PATH", then run this file again.
    exit /b 1
)
:venv_ready

"%PY%" -c "import os,sys; m=r'%MARKER%'; sys.exit(0 if os.path.exists(m) and os.path.getmtime(m) >= os.path.getmtime('pyproject.toml') else 1)"
if errorlevel 1 (
    echo Installing the suite into %VENV% - pyproject.toml is new or changed...
    "%PY%" -m pip install --disable-pip-version-check -e .
    if errorlevel 1 (
        echo ERROR: pip install failed, see the messages above. Check the internet
        echo        connection and the Python version - 3.11 or newer - then run this again.
        exit /b 1
    )
    echo installed> "%MARKER%"
)

"%PY%" exit_manager.py %*
exit /b %ERRORLEVEL%
