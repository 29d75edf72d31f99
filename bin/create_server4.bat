@echo off
rem Server 4 of the 5-node cluster on this machine: HTTP port 8084, Raft 127.0.0.1:6004, data
rem in data\server4. Runs create_server4.sh inside WSL (see run_in_wsl.bat for why); extra
rem arguments go to raftkv node.
setlocal
set "RAFTKV_SCRIPT=create_server4.sh"
call "%~dp0run_in_wsl.bat" %*
exit /b %ERRORLEVEL%
