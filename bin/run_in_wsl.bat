@echo off
rem Runs bin\SCRIPT (a .sh script of this folder, such as create_server0.sh) inside WSL, with the
rem remaining arguments. raftkv does not build as a Windows program: its Raft log store (the
rem raft-log crate) depends on chunked-wal 0.2.3, which uses Unix-only file calls (positioned
rem reads, inode numbers), so `cargo build` for Windows stops in that crate (README: Windows). The
rem Linux build runs unchanged in WSL, and WSL forwards the servers' localhost ports to Windows.
rem Usage: run_in_wsl.bat SCRIPT [ARGS...]
setlocal
rem By its full path: WSL installs it there, and a bare "wsl" could find a wsl.bat nearby first.
set "WSL=%SystemRoot%\System32\wsl.exe"
if not exist "%WSL%" (
  echo raftkv runs on Windows inside WSL ^(Windows Subsystem for Linux^), not installed here. 1>&2
  echo Its Raft log storage uses Unix-only file calls: it cannot be built as a Windows program. 1>&2
  echo Install WSL ^("wsl --install"^), then Rust inside it ^(https://rustup.rs^); run this again. 1>&2
  exit /b 1
)
set "SCRIPT=%~1"
if "%SCRIPT%"=="" (echo usage: %~nx0 SCRIPT [ARGS...] 1>&2 & exit /b 2)
rem %* keeps the script's name even after shift, so the arguments are gathered one by one.
set ARGS=
:gather
shift
if "%~1"=="" goto run
set ARGS=%ARGS% "%~1"
goto gather
:run
rem WSL starts in the Windows folder it is called from (as /mnt/c/...), so the script is found
rem by a relative path and finds the repository (and data\) relative to itself.
pushd "%~dp0"
"%WSL%" bash "./%SCRIPT%"%ARGS%
set "RC=%ERRORLEVEL%"
popd
exit /b %RC%
