@echo off
rem Server 2 of the 5-node cluster on this machine: HTTP port 8082, Raft 127.0.0.1:6002.
call "%~dp0raftkv.bat" node 8082 127.0.0.1:6002 127.0.0.1:6000 127.0.0.1:6001 127.0.0.1:6003 127.0.0.1:6004 --data-dir "%~dp0..\data\server2" %*
